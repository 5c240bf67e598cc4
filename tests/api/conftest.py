"""A lab behind the API: a SQLite store in tmp_path, a user per role, one project."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import FakeClock
from fastapi.testclient import TestClient

from annotrain.adapters.sqlite import SqliteStore
from annotrain.api import create_app
from annotrain.domain.records import UserRole
from annotrain.domain.tasks import Member, Role, Task
from annotrain.services.users import create_user
from annotrain.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CONFIG = (ROOT / "examples" / "sample_project" / "config.xml").read_text()
TEXT_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Labels name="label" toName="text"><Label value="Drug"/></Labels></View>'
)
#: A lab admin, the project's members by role, a user who is not a member.
ROLES = ("admin", "owner", "manager", "annotator", "reviewer", "outsider")
MEMBER_ROLES = {
    "manager": Role.MANAGER,
    "annotator": Role.ANNOTATOR,
    "reviewer": Role.REVIEWER,
}


@dataclass
class Lab:
    """The app, its store and a token per role."""

    client: TestClient
    store: SqliteStore
    tokens: dict[str, str]
    project_id: int
    task_id: int
    tmp_path: Path

    def auth(self, role: str) -> dict[str, str]:
        """Headers that sign in as ``role``."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def make_settings(tmp_path: Path, **changes: object) -> Settings:
    """Settings for a test: the data folder in tmp_path, nothing from the environment."""
    return Settings(_env_file=None, data_dir=tmp_path, **changes)  # type: ignore[call-arg]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    clock = FakeClock()
    with SqliteStore(tmp_path / "annotrain.db") as store:
        tokens = {}
        for role in (*ROLES, "newbie"):
            user_role = UserRole.ADMIN if role == "admin" else UserRole.USER
            tokens[role] = create_user(store, role, user_role, clock)[1]
        # Custom training scripts on, so every route can be called (they are off by
        # default; test_api_training_scripts checks the refusal).
        settings = make_settings(tmp_path, allow_custom_scripts=True)
        app = create_app(settings=settings, store=store, clock=clock)
        with TestClient(app) as client:
            created = client.post(
                "/api/v1/projects",
                json={"name": "Notes", "labeling_config": SAMPLE_CONFIG},
                headers={"Authorization": f"Bearer {tokens['owner']}"},
            )
            assert created.status_code == 201, created.text
            project_id = created.json()["id"]
            for user, role in MEMBER_ROLES.items():
                store.put_member(project_id, Member(user, role))
            (task,) = store.add_tasks(project_id, [Task(None, {"text": "Aspirin daily."})])
            assert isinstance(task.id, int)
            yield Lab(client, store, tokens, project_id, task.id, tmp_path)
