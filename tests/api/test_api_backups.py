"""``/api/v1/backups``: an admin backs the lab up and lists it; serverless points elsewhere."""

from __future__ import annotations

from api_events import http_api_event
from conftest import Lab
from mangum import Mangum
from test_api_jobs import inline_backups
from test_api_serverless import handler, invoke

__all__ = ["handler"]  # the serverless fixture, used below


def test_an_admin_backs_the_lab_up_and_sees_it_complete(lab: Lab) -> None:
    lab.client.app.state.backups = inline_backups(lab)  # type: ignore[attr-defined]
    started = lab.client.post("/api/v1/backups", headers=lab.auth("admin"))
    assert started.status_code == 202, started.text
    name = started.json()["name"]
    listed = lab.client.get("/api/v1/backups", headers=lab.auth("admin")).json()
    assert [b["name"] for b in listed["items"]] == [name]
    backup = listed["items"][0]
    assert backup["status"] == "complete"
    assert backup["counts"]["projects"] == 1
    assert backup["counts"]["tasks"] == 1
    assert backup["files"] >= 1
    assert listed["last_error"] is None


def test_a_second_backup_while_one_runs_is_refused(lab: Lab) -> None:
    pending: list[object] = []
    backups = inline_backups(lab)
    backups._start_thread = pending.append  # the first backup never gets to run
    lab.client.app.state.backups = backups  # type: ignore[attr-defined]
    first = lab.client.post("/api/v1/backups", headers=lab.auth("admin"))
    assert first.json()["status"] == "running"
    second = lab.client.post("/api/v1/backups", headers=lab.auth("admin"))
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "backup_in_progress"


def test_a_serverless_lab_points_to_pitr_and_versions(handler: Mangum) -> None:
    admin = {"username": "root", "cognito:groups": "[admin]"}
    for method in ("GET", "POST"):
        status, body = invoke(handler, http_api_event(method, "/api/v1/backups", claims=admin))
        assert status == 501
        assert body["error"]["code"] == "single_node_only"
        assert "point-in-time recovery" in body["error"]["message"]
        assert "docs/backup.md" in body["error"]["message"]


def test_a_serverless_lab_still_refuses_non_admins_first(handler: Mangum) -> None:
    user = {"username": "bob", "cognito:groups": "[]"}
    status, body = invoke(handler, http_api_event("POST", "/api/v1/backups", claims=user))
    assert status == 403
    assert body["error"]["code"] == "forbidden"
