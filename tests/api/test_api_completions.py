"""Members add completions: checked like an import, authored by the caller."""

from __future__ import annotations

from typing import Any

from conftest import Lab

from annotrain.domain.tasks import CompletionState

SPAN = {
    "id": "r1",
    "type": "labels",
    "from_name": "label",
    "to_name": "text",
    "value": {"start": 0, "end": 7, "text": "Aspirin", "labels": ["Medication"]},
}


def _post(lab: Lab, body: Any, role: str = "annotator") -> Any:
    return lab.client.post(
        f"/api/v1/projects/{lab.project_id}/tasks/{lab.task_id}/completions",
        json=body,
        headers=lab.auth(role),
    )


def test_a_completion_is_submitted_and_authored_by_the_caller(lab: Lab) -> None:
    response = _post(lab, {"result": [SPAN]})
    assert response.status_code == 201
    body = response.json()
    assert body["completed_by"] == "annotator"
    assert body["draft"] is False
    assert body["result"][0]["value"]["labels"] == ["Medication"]
    (stored,) = lab.store.get_task(lab.project_id, lab.task_id).completions
    assert (stored.id, stored.author, stored.state) == (
        body["id"],
        "annotator",
        CompletionState.SUBMITTED,
    )


def test_draft_true_keeps_it_a_draft(lab: Lab) -> None:
    response = _post(lab, {"result": [SPAN], "draft": True})
    assert response.status_code == 201
    assert response.json()["draft"] is True
    (stored,) = lab.store.get_task(lab.project_id, lab.task_id).completions
    assert stored.state is CompletionState.DRAFT


def test_a_result_the_config_does_not_allow_is_refused_and_nothing_stored(lab: Lab) -> None:
    wrong = {**SPAN, "value": {**SPAN["value"], "labels": ["Unknown"]}}
    response = _post(lab, {"result": [wrong]})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_tasks"
    assert lab.store.get_task(lab.project_id, lab.task_id).completions == ()


def test_the_author_cannot_be_set_by_the_caller(lab: Lab) -> None:
    response = _post(lab, {"result": [SPAN], "completed_by": "owner"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "completed_by"


def test_a_completion_of_a_missing_task_is_not_found(lab: Lab) -> None:
    response = lab.client.post(
        f"/api/v1/projects/{lab.project_id}/tasks/999/completions",
        json={"result": []},
        headers=lab.auth("owner"),
    )
    assert response.status_code == 404
