"""Models: the routes exist and check roles; listing, benchmarks and deploys land with issue 5.

Any user may list models (each will see those of their projects); reading one
takes a role in the project it was trained on; deploying one into a project its
Owner or a Manager. Each answers
:class:`~annotrain.domain.errors.NotImplementedYetError` once the caller passed.
"""

from __future__ import annotations

from typing import Protocol

from annotrain.domain.errors import NotFoundError, NotImplementedYetError
from annotrain.domain.records import ModelEntry
from annotrain.ports import ModelStore, ProjectStore
from annotrain.services.access import ANY_MEMBER, MANAGERS, Principal, authorize
from annotrain.services.trainings import TRAINING_ISSUE


class ModelRecords(ProjectStore, ModelStore, Protocol):
    """What the model routes read: projects (for roles) and the model registry."""


def list_models(store: ModelStore, principal: Principal) -> list[ModelEntry]:
    """The models the principal may see (not implemented yet)."""
    raise NotImplementedYetError("listing models", TRAINING_ISSUE)


def read_model(store: ModelRecords, principal: Principal, name: str) -> ModelEntry:
    """A model with its benchmark (not implemented yet)."""
    try:
        entry = store.get_model(name)
        authorize(store, principal, entry.project_id, ANY_MEMBER, "reading a model")
    except NotFoundError:
        raise NotFoundError("model", name) from None
    raise NotImplementedYetError("a model's benchmark and download", TRAINING_ISSUE)


def deploy_model(store: ProjectStore, principal: Principal, project_id: int, name: str) -> None:
    """Deploy a model into a project (not implemented yet)."""
    authorize(store, principal, project_id, MANAGERS, "deploying a model")
    raise NotImplementedYetError("deploying a model into a project", TRAINING_ISSUE)
