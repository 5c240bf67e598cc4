"""Events between the two sides of the lab: what the completions side says happened.

The completions side publishes; the trainings side subscribes (active learning).
In process on a single node (:class:`InProcessEvents`); an EventBridge publisher
takes its place in AWS. So the code that takes completions never holds the right
to submit jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CompletionSubmitted:
    """A completion was submitted (created submitted, or a draft submitted).

    Attributes:
        project_id: Its project.
        task_id: Its task.
        completion_id: The completion.
    """

    project_id: int
    task_id: int
    completion_id: int


class EventPublisher(Protocol):
    """Where the completions side says what happened (in process, or EventBridge)."""

    def publish(self, event: CompletionSubmitted) -> None:
        """Deliver the event to its subscribers; never raises for a subscriber's error."""
        ...


class InProcessEvents:
    """An :class:`EventPublisher` that calls its subscribers at once (the single node)."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[CompletionSubmitted], None]] = []

    def subscribe(self, handler: Callable[[CompletionSubmitted], None]) -> None:
        """Call ``handler`` for every event published from now on."""
        self._subscribers.append(handler)

    def publish(self, event: CompletionSubmitted) -> None:
        """Call each subscriber; one that fails is logged and the others still run."""
        for handler in self._subscribers:
            try:
                handler(event)
            except Exception:  # noqa: BLE001 - a subscriber's failure must not undo the submit
                _LOG.exception("event %r: subscriber %r failed", event, handler)
