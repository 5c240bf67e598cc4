"""``annotrain serve`` runs the local job runner beside uvicorn: started (recovery
first) before serving, shut down when uvicorn returns, reachable by the stop route."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from annotrain import cli
from annotrain.adapters.local_runner import RESTARTED_REASON, LocalJobRunner
from annotrain.adapters.sqlite import SqliteStore
from annotrain.domain.records import JobKind, Run, RunStatus, Server

SINCE = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def test_serve_recovers_leftover_jobs_and_stops_them_through_its_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "lab"
    data_dir.mkdir(mode=0o700)
    with SqliteStore(data_dir / "annotrain.db") as store:
        # Left running by a server that crashed: recovery fails it on start.
        store.create_run(Run("old", 1, JobKind.TRAIN, RunStatus.RUNNING, "a", SINCE))
        store.put_server(Server("old", JobKind.TRAIN, 1, "a", SINCE, False, "gone:1"))
    seen: dict[str, Any] = {}

    def fake_run(app: Any, *, host: str, port: int, **options: str) -> None:
        runner = app.state.runner
        seen["runner"] = runner
        seen["supervising"] = runner._thread is not None
        token = (data_dir / "admin-token").read_text().strip()
        with TestClient(app) as client:
            seen["servers"] = client.get(
                "/api/v1/servers", headers={"Authorization": f"Bearer {token}"}
            ).json()["items"]

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", fake_run)
    assert cli.main(["serve", "--data-dir", str(data_dir)]) == 0

    assert isinstance(seen["runner"], LocalJobRunner)
    assert seen["supervising"]
    assert seen["servers"] == []  # the stale record went with recovery
    assert seen["runner"]._thread is None  # shut down when uvicorn returned
    with SqliteStore(data_dir / "annotrain.db") as store:
        old = store.get_run("old")
    assert old.status is RunStatus.FAILED
    assert old.failure_reason == RESTARTED_REASON
