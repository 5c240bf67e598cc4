"""Members add completions: checked like an import, authored by the caller."""

from __future__ import annotations

from typing import Any

from conftest import Lab

from annotrain.domain.tasks import CompletionState, ReviewVerdict

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


def _url(lab: Lab, cid: Any, action: str = "") -> str:
    return f"/api/v1/projects/{lab.project_id}/tasks/{lab.task_id}/completions/{cid}{action}"


def _patch(lab: Lab, cid: Any, body: Any, role: str = "annotator") -> Any:
    return lab.client.patch(_url(lab, cid), json=body, headers=lab.auth(role))


def test_an_update_at_the_revision_read_changes_the_result(lab: Lab) -> None:
    created = _post(lab, {"result": []}).json()
    assert created["revision"] == 1
    response = _patch(lab, created["id"], {"result": [SPAN], "revision": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["revision"] == 2
    assert body["result"][0]["value"]["labels"] == ["Medication"]
    (stored,) = lab.store.get_task(lab.project_id, lab.task_id).completions
    assert stored.result[0].value["labels"] == ["Medication"]


def test_an_update_at_a_stale_revision_is_a_conflict_and_changes_nothing(lab: Lab) -> None:
    cid = _post(lab, {"result": []}).json()["id"]
    assert _patch(lab, cid, {"result": [SPAN], "revision": 1}).status_code == 200
    stale = _patch(lab, cid, {"result": [], "revision": 1})
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "conflict"
    (stored,) = lab.store.get_task(lab.project_id, lab.task_id).completions
    assert len(stored.result) == 1


def test_an_update_is_checked_against_the_config(lab: Lab) -> None:
    cid = _post(lab, {"result": [SPAN]}).json()["id"]
    wrong = {**SPAN, "value": {**SPAN["value"], "labels": ["Unknown"]}}
    response = _patch(lab, cid, {"result": [wrong], "revision": 1})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_tasks"


def test_annotators_cannot_touch_anothers_completion(lab: Lab) -> None:
    cid = _post(lab, {"result": []}, role="manager").json()["id"]
    assert _patch(lab, cid, {"result": [], "revision": 1}).status_code == 404
    # To an annotator it does not exist, so deleting it is deleting nothing.
    lab.client.delete(_url(lab, cid), headers=lab.auth("annotator"))
    assert len(lab.store.get_task(lab.project_id, lab.task_id).completions) == 1
    assert _patch(lab, cid, {"result": [], "revision": 1}, role="reviewer").status_code == 403
    assert _patch(lab, cid, {"result": [SPAN], "revision": 1}, role="owner").status_code == 200


def test_a_draft_is_submitted_once(lab: Lab) -> None:
    draft = _post(lab, {"result": [SPAN], "draft": True}).json()
    url = _url(lab, draft["id"], "/submit")
    response = lab.client.post(url, json={"revision": 1}, headers=lab.auth("annotator"))
    assert response.status_code == 200, response.text
    assert (response.json()["draft"], response.json()["revision"]) == (False, 2)
    (stored,) = lab.store.get_task(lab.project_id, lab.task_id).completions
    assert stored.state is CompletionState.SUBMITTED
    again = lab.client.post(url, json={"revision": 2}, headers=lab.auth("annotator"))
    assert again.status_code == 422


def test_submitting_a_stale_draft_is_a_conflict(lab: Lab) -> None:
    cid = _post(lab, {"result": [], "draft": True}).json()["id"]
    assert _patch(lab, cid, {"result": [SPAN], "revision": 1}).status_code == 200
    url = _url(lab, cid, "/submit")
    response = lab.client.post(url, json={"revision": 1}, headers=lab.auth("annotator"))
    assert response.status_code == 409
    (stored,) = lab.store.get_task(lab.project_id, lab.task_id).completions
    assert stored.state is CompletionState.DRAFT


def test_deleting_a_completion_removes_it_and_again_is_no_error(lab: Lab) -> None:
    cid = _post(lab, {"result": [SPAN]}).json()["id"]
    for _ in range(2):
        response = lab.client.delete(_url(lab, cid), headers=lab.auth("annotator"))
        assert response.status_code == 204
    assert lab.store.get_task(lab.project_id, lab.task_id).completions == ()


def _review(lab: Lab, cid: Any, accepted: bool, role: str = "reviewer", **extra: Any) -> Any:
    body = {"accepted": accepted, **extra}
    return lab.client.post(_url(lab, cid, "/review"), json=body, headers=lab.auth(role))


def test_a_reviewers_verdict_stands_with_the_reviewer_and_comment(lab: Lab) -> None:
    cid = _post(lab, {"result": [SPAN]}).json()["id"]
    response = _review(lab, cid, False, comment="Aspirin is a drug, not a dose")
    assert response.status_code == 200, response.text
    (review,) = response.json()["reviews"]
    assert (review["accepted"], review["reviewer"]) == (False, "reviewer")
    assert review["comment"] == "Aspirin is a drug, not a dose"
    assert _review(lab, cid, True, role="manager").status_code == 200
    (stored,) = lab.store.get_task(lab.project_id, lab.task_id).completions
    assert stored.verdict is ReviewVerdict.ACCEPTED
    assert [r.reviewer for r in stored.reviews] == ["reviewer", "manager"]


def test_annotators_cannot_review(lab: Lab) -> None:
    cid = _post(lab, {"result": [SPAN]}).json()["id"]
    assert _review(lab, cid, True, role="annotator").status_code == 403
    assert lab.store.get_task(lab.project_id, lab.task_id).completions[0].reviews == ()


def test_a_draft_cannot_be_reviewed(lab: Lab) -> None:
    cid = _post(lab, {"result": [SPAN], "draft": True}).json()["id"]
    response = _review(lab, cid, True)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "completion"


def test_a_missing_completion_is_not_found(lab: Lab) -> None:
    assert _patch(lab, 999, {"result": [], "revision": 1}, role="owner").status_code == 404
    assert _review(lab, 999, True).status_code == 404


def _task(lab: Lab, role: str = "annotator") -> Any:
    url = f"/api/v1/projects/{lab.project_id}/tasks/{lab.task_id}"
    return lab.client.get(url, headers=lab.auth(role)).json()


def test_a_task_read_carries_the_revision_a_change_is_made_at(lab: Lab) -> None:
    cid = _post(lab, {"result": [SPAN]}).json()["id"]
    assert _review(lab, cid, True).status_code == 200  # a review advances the revision
    (read,) = _task(lab)["annotations"]
    assert (read["id"], read["revision"], read["draft"]) == (cid, 2, False)
    assert _patch(lab, cid, {"result": [], "revision": 1}).status_code == 409
    changed = _patch(lab, cid, {"result": [], "revision": read["revision"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["revision"] == 3


def test_the_task_listing_carries_revisions_of_annotations_and_drafts(lab: Lab) -> None:
    submitted = _post(lab, {"result": [SPAN]}).json()["id"]
    draft = _post(lab, {"result": [], "draft": True}).json()["id"]
    assert _patch(lab, draft, {"lead_time": 3.0, "revision": 1}).status_code == 200
    url = f"/api/v1/projects/{lab.project_id}/tasks"
    (task,) = lab.client.get(url, headers=lab.auth("owner")).json()["items"]
    assert [(c["id"], c["revision"], c["draft"]) for c in task["annotations"]] == [
        (submitted, 1, False)
    ]
    assert [(c["id"], c["revision"], c["draft"]) for c in task["drafts"]] == [(draft, 2, True)]


def test_updated_at_is_the_creation_time_until_a_change_moves_it(lab: Lab) -> None:
    created = _post(lab, {"result": []}).json()
    assert created["updated_at"] == created["created_at"]
    later = lab.client.app.state.clock.advance(60)  # type: ignore[attr-defined]
    changed = _patch(lab, created["id"], {"result": [SPAN], "revision": 1}).json()
    assert (changed["created_at"], changed["updated_at"]) == (
        created["created_at"],
        later.isoformat(),
    )
    (read,) = _task(lab)["annotations"]
    assert read["updated_at"] == later.isoformat()


def test_an_update_that_changes_nothing_is_refused_and_keeps_the_revision(lab: Lab) -> None:
    cid = _post(lab, {"result": [SPAN]}).json()["id"]
    response = _patch(lab, cid, {"revision": 1})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "result"
    (stored,) = lab.store.get_task(lab.project_id, lab.task_id).completions
    assert stored.revision == 1
