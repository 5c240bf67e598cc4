"""Who the caller is: ``GET /system`` names them and their lab role, and every project
read carries their own role in that project (``my_role``), so the web console can
offer only what that role may do. The routes still check roles themselves."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from conftest import TEXT_CONFIG, Lab

from annotrain.domain.tasks import Member, Role
from annotrain.services.access import Principal
from annotrain.services.projects import list_projects


@pytest.mark.parametrize(
    ("user", "lab_role"), [("admin", "admin"), ("annotator", "user"), ("outsider", "user")]
)
def test_the_system_page_names_the_caller_and_their_lab_role(
    lab: Lab, user: str, lab_role: str
) -> None:
    body = lab.client.get("/api/v1/system", headers=lab.auth(user)).json()
    assert body["user"] == {"name": user, "role": lab_role}


@pytest.mark.parametrize(
    ("user", "role"),
    [
        ("owner", "Owner"),
        ("manager", "Manager"),
        ("annotator", "Annotator"),
        ("reviewer", "Reviewer"),
    ],
)
def test_reading_a_project_tells_each_member_their_own_role(lab: Lab, user: str, role: str) -> None:
    response = lab.client.get(f"/api/v1/projects/{lab.project_id}", headers=lab.auth(user))
    assert response.status_code == 200
    assert response.json()["my_role"] == role


def test_an_admin_reads_a_project_they_are_not_in_with_no_role_and_one_they_are_in_with_it(
    lab: Lab,
) -> None:
    url = f"/api/v1/projects/{lab.project_id}"
    assert lab.client.get(url, headers=lab.auth("admin")).json()["my_role"] is None
    lab.store.put_member(lab.project_id, Member("admin", Role.REVIEWER))
    assert lab.client.get(url, headers=lab.auth("admin")).json()["my_role"] == "Reviewer"


def test_an_outsider_still_learns_nothing_of_the_project(lab: Lab) -> None:
    response = lab.client.get(f"/api/v1/projects/{lab.project_id}", headers=lab.auth("outsider"))
    assert response.status_code == 404
    assert "my_role" not in response.text


def _listed_roles(lab: Lab, user: str, query: str = "") -> dict[str, str | None]:
    response = lab.client.get(f"/api/v1/projects{query}", headers=lab.auth(user))
    assert response.status_code == 200
    return {p["name"]: p["my_role"] for p in response.json()["items"]}


def test_the_project_list_gives_each_reader_their_own_role_in_each_project(lab: Lab) -> None:
    created = lab.client.post(
        "/api/v1/projects",
        json={"name": "Own", "labeling_config": TEXT_CONFIG},
        headers=lab.auth("annotator"),
    )
    assert created.json()["my_role"] == "Owner"  # its creator is made its Owner
    assert _listed_roles(lab, "annotator") == {"Notes": "Annotator", "Own": "Owner"}
    assert _listed_roles(lab, "owner") == {"Notes": "Owner"}
    assert _listed_roles(lab, "reviewer") == {"Notes": "Reviewer"}
    assert _listed_roles(lab, "admin") == {"Notes": None, "Own": None}
    lab.store.put_member(created.json()["id"], Member("admin", Role.MANAGER))
    assert _listed_roles(lab, "admin") == {"Notes": None, "Own": "Manager"}
    # A later page carries the roles of its own projects.
    assert _listed_roles(lab, "admin", "?page=2&page_size=1") == {"Own": "Manager"}
    assert _listed_roles(lab, "annotator", "?page=2&page_size=1") == {"Own": "Owner"}


def test_changing_a_project_answers_with_the_callers_role(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}"
    by_manager = lab.client.patch(url, json={"description": "d"}, headers=lab.auth("manager"))
    assert by_manager.json()["my_role"] == "Manager"
    by_admin = lab.client.patch(url, json={"description": "e"}, headers=lab.auth("admin"))
    assert by_admin.json()["my_role"] is None


class CountingStore:
    """The store, counting the calls made to it by name."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


@pytest.mark.parametrize("user", ["annotator", "admin"])
def test_listing_projects_looks_up_the_readers_roles_once_not_per_project(
    lab: Lab, user: str
) -> None:
    for index in range(30):
        lab.client.post(
            "/api/v1/projects",
            json={"name": f"P{index}", "labeling_config": TEXT_CONFIG},
            headers=lab.auth("annotator" if index % 2 else "owner"),
        )
    store = CountingStore(lab.store)
    principal = Principal(user, is_admin=user == "admin")
    shown, total = list_projects(store, principal, page=1, page_size=100)
    assert total == (31 if user == "admin" else 16)
    assert {p.role for p in shown} == ({None} if user == "admin" else {Role.ANNOTATOR, Role.OWNER})
    assert store.calls["get_memberships"] == 1
    assert store.calls["list_members"] == 0
