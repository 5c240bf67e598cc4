"""``annotrain users create`` and ``annotrain serve`` (the app it serves, not a live server)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from annotrain import cli
from annotrain.adapters.sqlite import SqliteStore
from annotrain.services.users import hash_token
from annotrain.settings import Settings, get_settings


def test_users_create_prints_the_token_alone_on_the_last_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["users", "create", "ann", "--role", "admin", "--data-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    token = out.splitlines()[-1]
    assert len(token) >= 40
    assert token not in err
    with SqliteStore(tmp_path / "annotrain.db") as store:
        stored = store.find_token(hash_token(token))
        assert stored is not None
        assert stored.user == "ann"
        assert store.get_user("ann").role == "admin"


def test_users_create_refuses_a_taken_name_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["users", "create", "ann", "--data-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    assert cli.main(argv) == 2
    assert "already exists" in capsys.readouterr().err


def test_the_data_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANNOTRAIN_DATA_DIR", str(tmp_path / "env-lab"))
    get_settings.cache_clear()
    try:
        assert Settings().data_dir == tmp_path / "env-lab"
        assert cli.main(["users", "create", "ann"]) == 0
    finally:
        get_settings.cache_clear()
    assert (tmp_path / "env-lab" / "annotrain.db").exists()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What ``serve`` hands uvicorn, instead of running a server."""
    seen: dict[str, Any] = {}

    def fake_run(app: Any, *, host: str, port: int, loop: str, http: str) -> None:
        seen.update(app=app, host=host, port=port, loop=loop, http=http)
        # serve closes the store when uvicorn returns: use the app before.
        with TestClient(app) as client:
            seen["health"] = client.get("/health").status_code
            token = (seen["data_dir"] / "admin-token").read_text().strip()
            seen["system"] = client.get(
                "/api/v1/system", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            seen["projects"] = client.get(
                "/api/v1/projects", headers={"Authorization": f"Bearer {token}"}
            ).json()

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", fake_run)
    return seen


def test_serve_creates_the_first_admin_with_a_private_token_file(
    tmp_path: Path, served: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "lab"
    served["data_dir"] = data_dir
    assert cli.main(["serve", "--data-dir", str(data_dir), "--port", "9000"]) == 0
    assert (served["host"], served["port"]) == ("127.0.0.1", 9000)
    assert served["health"] == served["system"] == 200
    assert served["projects"]["total"] == 0
    token_file = data_dir / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) & 0o077 == 0
    out, err = capsys.readouterr()
    assert str(token_file) in err
    token = token_file.read_text().strip()
    assert token not in out + err


def test_serve_leaves_an_existing_lab_alone(
    tmp_path: Path, served: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "lab"
    served["data_dir"] = data_dir
    assert cli.main(["serve", "--data-dir", str(data_dir)]) == 0
    first = (data_dir / "admin-token").read_text()
    capsys.readouterr()
    assert cli.main(["serve", "--data-dir", str(data_dir)]) == 0
    assert (data_dir / "admin-token").read_text() == first
    assert "first admin" not in capsys.readouterr().err


def test_serve_with_a_demo_seeds_the_sample_project_on_the_first_start_only(
    tmp_path: Path, served: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "lab"
    served["data_dir"] = data_dir
    sample = Path(__file__).resolve().parents[2] / "examples" / "sample_project"
    argv = ["serve", "--data-dir", str(data_dir), "--demo", str(sample)]
    assert cli.main(argv) == 0
    (project,) = served["projects"]["items"]
    assert project["name"] == "Demo: sample project"
    assert "seeded the demo project" in capsys.readouterr().err
    # A lab that has started once is never seeded again, even if emptied since.
    assert cli.main(argv) == 0
    assert served["projects"]["total"] == 1
    assert "seeded" not in capsys.readouterr().err


def test_serve_runs_on_uvloop_and_httptools_when_installed(
    tmp_path: Path, served: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # The api extra installs both; the lab's set-up always has them.
    served["data_dir"] = tmp_path / "lab"
    assert cli.main(["serve", "--data-dir", str(served["data_dir"])]) == 0
    assert (served["loop"], served["http"]) == ("uvloop", "httptools")
    assert "uvloop event loop and the httptools HTTP parser" in capsys.readouterr().err
