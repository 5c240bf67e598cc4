"""Active learning: every N newly submitted completions start a training of the project.

The completions side only publishes that a completion was submitted
(:class:`CompletionSubmitted`, through an :class:`EventPublisher`); this side,
subscribed to those events, counts them per project and, at the project's
threshold, starts a training marked ``active_learning`` with the request the
project saved when active learning was turned on. So the function that takes
completions never holds the right to submit jobs.

A run started so is deployed only when it beats the deployed model on its own
test split (the job decides, and records why on the run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from annotrain.domain.errors import AnnotrainError, ConflictError
from annotrain.domain.records import Project, Run
from annotrain.ports import BlobStore, Clock, JobRunner, ProjectStore
from annotrain.services.events import CompletionSubmitted
from annotrain.services.licenses import Licensing
from annotrain.services.trainings import (
    Source,
    TrainingRequest,
    TrainingStores,
    submit_training,
)

_LOG = logging.getLogger(__name__)

#: The project setting that holds active learning's state.
SETTING = "active_learning"
THRESHOLDS = (50, 100, 200)
_MAX_RETRIES = 20


def settings_of(project: Project) -> Mapping[str, Any]:
    """The project's active-learning state (empty when never turned on)."""
    value = project.settings.get(SETTING)
    return value if isinstance(value, Mapping) else {}


def configure(
    store: ProjectStore,
    project_id: int,
    *,
    enabled: bool,
    threshold: int,
    request: TrainingRequest,
    by: str,
) -> Project:
    """Turn active learning on or off for a project, with the training to repeat.

    The count of completions starts again from zero.
    """

    def change(project: Project) -> Project:
        state = {
            "enabled": enabled,
            "threshold": threshold,
            "request": request.to_json(),
            "by": by,
            "submitted_since": 0,
        }
        return replace(project, settings={**project.settings, SETTING: state})

    return _update_project(store, project_id, change)


class ActiveLearningTrigger:
    """The trainings side's subscriber: counts submits and starts a training at the threshold.

    Args:
        store: The lab's records.
        blobs: Where snapshots go.
        runner: Runs the training job.
        clock: The time.
        gpu_available: Whether a run asking for the GPU can have one.
        licensing: Admits the training (scope, server limits).
        allow_custom_scripts: Whether the lab runs projects' training scripts.
    """

    def __init__(
        self,
        store: TrainingStores,
        blobs: BlobStore,
        runner: JobRunner | None,
        clock: Clock,
        *,
        gpu_available: Callable[[], bool],
        licensing: Licensing,
        allow_custom_scripts: bool = False,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._runner = runner
        self._clock = clock
        self._gpu_available = gpu_available
        self._licensing = licensing
        self._allow_custom_scripts = allow_custom_scripts

    def __call__(self, event: CompletionSubmitted) -> Run | None:
        """Count the submit; at the threshold, start a training (returned), else None."""
        project = self._store.get_project(event.project_id)
        if not settings_of(project).get("enabled"):
            return None
        fired: list[bool] = []

        def count(current: Project) -> Project:
            fired.clear()
            state = dict(settings_of(current))
            if not state.get("enabled"):
                return current
            since = int(state.get("submitted_since", 0)) + 1
            threshold = int(state.get("threshold", THRESHOLDS[1]))
            if since >= threshold:
                since = 0
                fired.append(True)
            state["submitted_since"] = since
            return replace(current, settings={**current.settings, SETTING: state})

        project = _update_project(self._store, event.project_id, count)
        if not fired:
            return None
        state = settings_of(project)
        try:
            request = TrainingRequest.from_json(state.get("request") or {})
            run = submit_training(
                self._store, self._blobs, self._runner, self._clock, project, request,
                created_by=str(state.get("by") or project.created_by),
                source=Source.ACTIVE_LEARNING, gpu_available=self._gpu_available(),
                licensing=self._licensing,
                allow_custom_scripts=self._allow_custom_scripts,
            )  # fmt: skip
        except AnnotrainError as exc:
            # Nobody waits on this request: the project keeps why, for the next reader.
            _LOG.warning("project %s: active learning could not start a training: %s",
                         project.id, exc)  # fmt: skip
            self._note(project.id, {"last_error": str(exc), "last_run": None})
            return None
        self._note(project.id, {"last_error": None, "last_run": run.id})
        return run

    def _note(self, project_id: int, values: Mapping[str, Any]) -> None:
        def note(project: Project) -> Project:
            state = {**settings_of(project), **values}
            return replace(project, settings={**project.settings, SETTING: state})

        _update_project(self._store, project_id, note)


def _update_project(
    store: ProjectStore, project_id: int, change: Callable[[Project], Project]
) -> Project:
    for attempt in range(_MAX_RETRIES + 1):
        project = store.get_project(project_id)
        changed = change(project)
        if changed == project:
            return project
        try:
            return store.update_project(changed)
        except ConflictError:
            if attempt == _MAX_RETRIES:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
