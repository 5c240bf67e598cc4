"""Trainings: the routes exist and check roles; the training itself lands with issue 5.

Starting a training takes the project's Owner or a Manager (or an admin); reading
one any project role; cancelling one Owner or Manager. Each answers
:class:`~annotrain.domain.errors.NotImplementedYetError` once the caller passed.
"""

from __future__ import annotations

from typing import Protocol

from annotrain.domain.errors import NotFoundError, NotImplementedYetError
from annotrain.domain.records import JobKind, Run
from annotrain.domain.tasks import Role
from annotrain.ports import ProjectStore, RunStore
from annotrain.services.access import ANY_MEMBER, MANAGERS, Principal, authorize

#: Who brings training runs, for the 501 messages.
TRAINING_ISSUE = "issue 5 (training and pre-annotation for text: batch_jobs.train)"


class TrainingRecords(ProjectStore, RunStore, Protocol):
    """What the training routes read: projects (for roles) and runs."""


def start_training(store: ProjectStore, principal: Principal, project_id: int) -> Run:
    """Start a training of a project's models (not implemented yet)."""
    authorize(store, principal, project_id, MANAGERS, "starting a training")
    raise NotImplementedYetError("starting a training", TRAINING_ISSUE)


def list_trainings(store: ProjectStore, principal: Principal, project_id: int) -> list[Run]:
    """A project's trainings (not implemented yet)."""
    authorize(store, principal, project_id, ANY_MEMBER, "listing trainings")
    raise NotImplementedYetError("listing a project's trainings", TRAINING_ISSUE)


def read_training(store: TrainingRecords, principal: Principal, training_id: str) -> Run:
    """A training's status, progress and metrics (not implemented yet)."""
    _authorize_training(store, principal, training_id, ANY_MEMBER, "reading a training")
    raise NotImplementedYetError("a training's status, progress and metrics", TRAINING_ISSUE)


def read_training_logs(store: TrainingRecords, principal: Principal, training_id: str) -> str:
    """A training's log (not implemented yet)."""
    _authorize_training(store, principal, training_id, ANY_MEMBER, "reading a training's log")
    raise NotImplementedYetError("a training's log (tail and download)", TRAINING_ISSUE)


def cancel_training(store: TrainingRecords, principal: Principal, training_id: str) -> Run:
    """Cancel a training (not implemented yet; POST /servers/{run_id}/stop works now)."""
    _authorize_training(store, principal, training_id, MANAGERS, "cancelling a training")
    raise NotImplementedYetError(
        "cancelling a training here (POST /api/v1/servers/{run_id}/stop stops it now)",
        TRAINING_ISSUE,
    )


def _authorize_training(
    store: TrainingRecords,
    principal: Principal,
    training_id: str,
    roles: frozenset[Role],
    action: str,
) -> Run:
    # A run of another kind, or of a project the caller is not in, is no training of theirs.
    try:
        run = store.get_run(training_id)
    except NotFoundError:
        raise NotFoundError("training", training_id) from None
    if run.kind is not JobKind.TRAIN:
        raise NotFoundError("training", training_id)
    try:
        authorize(store, principal, run.project_id, roles, action)
    except NotFoundError:
        raise NotFoundError("training", training_id) from None
    return run
