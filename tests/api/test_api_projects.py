"""Projects, their config and members through the API."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import SAMPLE_CONFIG, TEXT_CONFIG, Lab

from annotrain.adapters.sqlite import SqliteStore
from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.tasks import Member, Role
from annotrain.services.access import Principal
from annotrain.services.projects import remove_member


def test_creating_a_project_answers_201_with_its_id_and_makes_the_creator_owner(
    lab: Lab,
) -> None:
    response = lab.client.post(
        "/api/v1/projects",
        json={"name": "Drugs", "labeling_config": TEXT_CONFIG, "description": "a test"},
        headers=lab.auth("annotator"),
    )
    assert response.status_code == 201
    project = response.json()
    assert project["name"] == "Drugs"
    assert project["description"] == "a test"
    assert project["created_by"] == "annotator"
    members = lab.client.get(
        f"/api/v1/projects/{project['id']}/members", headers=lab.auth("annotator")
    ).json()["items"]
    assert members == [{"user": "annotator", "role": "Owner", "priority": 0}]


def test_a_bad_labeling_config_is_refused_with_every_issue_and_nothing_stored(lab: Lab) -> None:
    bad = (
        '<View><Text name="text" value="$text"/>'
        '<Labels name="label" toName="txt"><Label value="A"/><Label value="A"/></Labels></View>'
    )
    response = lab.client.post(
        "/api/v1/projects", json={"name": "Bad", "labeling_config": bad}, headers=lab.auth("admin")
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_labeling_config"
    assert error["field"] == "labeling_config"
    messages = " ".join(issue["text"] for issue in error["details"])
    assert "toName='txt' names no tag" in messages
    assert "declared twice" in messages
    listed = lab.client.get("/api/v1/projects", headers=lab.auth("admin")).json()
    assert listed["total"] == 1


def test_unknown_fields_are_refused_naming_the_field(lab: Lab) -> None:
    response = lab.client.post(
        "/api/v1/projects",
        json={"name": "X", "labeling_config": TEXT_CONFIG, "colour": "red"},
        headers=lab.auth("owner"),
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == "colour"


def test_a_missing_field_is_named(lab: Lab) -> None:
    response = lab.client.post("/api/v1/projects", json={"name": "X"}, headers=lab.auth("owner"))
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "labeling_config"


def test_admins_list_every_project_and_others_only_their_own(lab: Lab) -> None:
    for name in ("A", "B"):
        created = lab.client.post(
            "/api/v1/projects",
            json={"name": name, "labeling_config": TEXT_CONFIG},
            headers=lab.auth("outsider"),
        )
        assert created.status_code == 201

    def names(role: str) -> list[str]:
        body = lab.client.get("/api/v1/projects", headers=lab.auth(role)).json()
        assert body["total"] == len(body["items"])
        return [p["name"] for p in body["items"]]

    assert names("admin") == ["Notes", "A", "B"]
    assert names("outsider") == ["A", "B"]
    assert names("reviewer") == ["Notes"]
    assert names("newbie") == []


def test_project_listing_is_paginated_with_a_total(lab: Lab) -> None:
    for index in range(4):
        lab.client.post(
            "/api/v1/projects",
            json={"name": f"P{index}", "labeling_config": TEXT_CONFIG},
            headers=lab.auth("owner"),
        )
    page = lab.client.get("/api/v1/projects?page=2&page_size=2", headers=lab.auth("owner")).json()
    assert [p["name"] for p in page["items"]] == ["P1", "P2"]
    assert page["total"] == 5
    refused = lab.client.get("/api/v1/projects?page=0", headers=lab.auth("owner"))
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "page"


def test_a_non_member_is_told_exactly_what_a_missing_project_says(lab: Lab) -> None:
    hidden = lab.client.get(f"/api/v1/projects/{lab.project_id}", headers=lab.auth("outsider"))
    missing = lab.client.get("/api/v1/projects/999", headers=lab.auth("outsider"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
    assert hidden.json()["error"]["message"].replace(str(lab.project_id), "N") == (
        missing.json()["error"]["message"].replace("999", "N")
    )


def test_patch_changes_only_what_it_names(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}"
    response = lab.client.patch(url, json={"description": "notes"}, headers=lab.auth("manager"))
    assert response.status_code == 200
    project = response.json()
    assert (project["name"], project["description"], project["revision"]) == ("Notes", "notes", 2)
    assert project["labeling_config"] == SAMPLE_CONFIG


def test_replacing_the_config_reports_the_models_it_implies(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}/config"
    response = lab.client.put(url, json={"labeling_config": TEXT_CONFIG}, headers=lab.auth("owner"))
    assert response.status_code == 200
    models = response.json()["models"]
    assert [(m["kind"], m["labels"]) for m in models] == [("ner", ["Drug"])]
    read = lab.client.get(url, headers=lab.auth("annotator")).json()
    assert read["labeling_config"] == TEXT_CONFIG


def test_a_refused_config_leaves_the_project_as_it_was(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}/config"
    response = lab.client.put(url, json={"labeling_config": "<View>"}, headers=lab.auth("owner"))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_labeling_config"
    assert lab.store.get_project(lab.project_id).label_config == SAMPLE_CONFIG


def test_deleting_a_project_makes_it_gone(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}"
    assert lab.client.delete(url, headers=lab.auth("owner")).status_code == 204
    assert lab.client.get(url, headers=lab.auth("admin")).status_code == 404


def test_a_manager_may_not_grant_the_owner_role(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}/members"
    body = {"user": "newbie", "role": "Owner"}
    refused = lab.client.put(url, json=body, headers=lab.auth("manager"))
    assert refused.status_code == 403
    assert lab.client.put(url, json=body, headers=lab.auth("owner")).status_code == 200


def test_a_manager_may_not_remove_the_owner(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}/members/owner"
    assert lab.client.delete(url, headers=lab.auth("manager")).status_code == 403
    _make_owner(lab, "newbie")
    assert lab.client.delete(url, headers=lab.auth("admin")).status_code == 204


def _make_owner(lab: Lab, user: str) -> None:
    url = f"/api/v1/projects/{lab.project_id}/members"
    body = {"user": user, "role": "Owner"}
    assert lab.client.put(url, json=body, headers=lab.auth("owner")).status_code == 200


def _roles(lab: Lab) -> dict[str, str]:
    url = f"/api/v1/projects/{lab.project_id}/members"
    items = lab.client.get(url, headers=lab.auth("admin")).json()["items"]
    return {m["user"]: m["role"] for m in items}


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_the_last_owner_cannot_be_removed_and_the_error_says_how(lab: Lab, role: str) -> None:
    url = f"/api/v1/projects/{lab.project_id}/members/owner"
    response = lab.client.delete(url, headers=lab.auth(role))
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_request", "member")
    assert "last Owner" in error["message"]
    assert "make another member Owner" in error["message"]
    assert _roles(lab)["owner"] == "Owner"


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_the_last_owner_cannot_be_demoted(lab: Lab, role: str) -> None:
    url = f"/api/v1/projects/{lab.project_id}/members"
    body = {"user": "owner", "role": "Manager"}
    response = lab.client.put(url, json=body, headers=lab.auth(role))
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "role"
    assert _roles(lab)["owner"] == "Owner"


def test_with_a_second_owner_the_first_may_step_down_and_leave(lab: Lab) -> None:
    _make_owner(lab, "newbie")
    url = f"/api/v1/projects/{lab.project_id}/members"
    body = {"user": "owner", "role": "Annotator"}
    assert lab.client.put(url, json=body, headers=lab.auth("owner")).status_code == 200
    assert lab.client.delete(f"{url}/owner", headers=lab.auth("newbie")).status_code == 204
    roles = _roles(lab)
    assert roles["newbie"] == "Owner"
    assert "owner" not in roles


def test_an_owner_may_keep_the_owner_role_with_a_new_priority(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}/members"
    body = {"user": "owner", "role": "Owner", "priority": 3}
    assert lab.client.put(url, json=body, headers=lab.auth("owner")).status_code == 200


class _RacingStore:
    """A store where another Owner steps down just as this change is made."""

    def __init__(self, store: SqliteStore, project_id: int, other: str) -> None:
        self._store = store
        self._project_id = project_id
        self._other = other

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def remove_member(self, project_id: int, user: str) -> None:
        # The other Owner's own demotion, checked while this one still was an Owner.
        self._store.put_member(self._project_id, Member(self._other, Role.MANAGER))
        self._store.remove_member(project_id, user)


def test_two_owners_stepping_down_at_once_leave_one_owner(lab: Lab) -> None:
    _make_owner(lab, "newbie")
    racing = _RacingStore(lab.store, lab.project_id, "newbie")
    with pytest.raises(InvalidRequestError, match="last Owner"):
        remove_member(racing, Principal("admin", is_admin=True), lab.project_id, "owner")  # type: ignore[arg-type]
    roles = _roles(lab)
    assert (roles["owner"], roles["newbie"]) == ("Owner", "Manager")


def test_putting_a_member_changes_their_role_and_priority(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}/members"
    body = {"user": "annotator", "role": "Reviewer", "priority": 5}
    assert lab.client.put(url, json=body, headers=lab.auth("manager")).status_code == 200
    members = {m["user"]: m for m in lab.client.get(url, headers=lab.auth("owner")).json()["items"]}
    assert members["annotator"] == {"user": "annotator", "role": Role.REVIEWER, "priority": 5}


def test_an_unknown_user_cannot_become_a_member(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}/members"
    body = {"user": "nobody", "role": "Annotator"}
    response = lab.client.put(url, json=body, headers=lab.auth("owner"))
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "user"


def test_an_unknown_role_is_refused(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}/members"
    response = lab.client.put(
        url, json={"user": "newbie", "role": "King"}, headers=lab.auth("owner")
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "role"


def test_the_system_page_is_honest_about_gpu_and_license(lab: Lab) -> None:
    body = lab.client.get("/api/v1/system", headers=lab.auth("annotator")).json()
    assert body["mode"] == "single_node"
    assert body["license"] == "single-node default license (all scopes; no license imported)"
    assert body["license_scopes"] == ["inference", "ocr:inference", "ocr:training", "training"]
    assert body["cost_banner"] is None
    assert body["gpu"] in ("no GPU", "GPU Resource Available")
    assert body["gpu"] == ("GPU Resource Available" if body["gpu_available"] else "no GPU")
