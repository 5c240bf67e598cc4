"""The demo project a fresh single-node lab starts with, so /docs has something to try."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from annotrain.domain.records import Project
from annotrain.ports import Clock, ProjectStore, TaskStore
from annotrain.services.access import Principal
from annotrain.services.projects import create_project
from annotrain.services.tasks import import_tasks


class _Stores(ProjectStore, TaskStore, Protocol):
    """Projects and their tasks."""


def seed_demo_project(
    store: _Stores, owner: Principal, clock: Clock, folder: Path
) -> Project | None:
    """Create a project from ``folder`` (``config.xml`` and ``tasks.json``) in an empty lab.

    Args:
        store: Where projects and tasks go.
        owner: Who owns the demo project (the first admin).
        clock: The time.
        folder: A sample project: its labeling config and Label Studio JSON tasks.

    Returns:
        The project, or None when the lab has projects already (only a fresh lab
        is seeded, so a user's deletions stay deleted).

    Raises:
        LabelingConfigError, TaskImportError: The folder's files are not usable;
            the half-made project is deleted again.
    """
    if store.list_projects(limit=1).items:
        return None
    config = (folder / "config.xml").read_text(encoding="utf-8")
    tasks = json.loads((folder / "tasks.json").read_text(encoding="utf-8"))
    project = create_project(
        store, owner, clock,
        name=f"Demo: {folder.name.replace('_', ' ')}",
        labeling_config=config,
        description=f"Seeded on first start from {folder}",
    )  # fmt: skip
    try:
        import_tasks(store, owner, project.id, tasks)
    except BaseException:
        store.delete_project(project.id)
        raise
    return project
