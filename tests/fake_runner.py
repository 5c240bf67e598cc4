"""A JobRunner that records what it is asked, for tests of what submits jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fakes import FakeClock

from annotrain.domain.records import RunStatus
from annotrain.ports import JobSpec, JobStatus
from annotrain.services.run_lifecycle import mark_finished


@dataclass
class RecordingRunner:
    """Keeps submitted specs; ``fail`` makes submit raise it; cancel marks the run cancelled."""

    store: Any
    fail: Exception | None = None
    submitted: list[JobSpec] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def submit(self, spec: JobSpec) -> str:
        if self.fail is not None:
            raise self.fail
        self.submitted.append(spec)
        return f"fake:{spec.run_id}"

    def cancel(self, run_id: str) -> None:
        self.cancelled.append(run_id)
        mark_finished(
            self.store,
            run_id,
            RunStatus.CANCELLED,
            at=FakeClock().now(),
            reason="cancelled by user",
        )

    def status(self, run_id: str) -> JobStatus:
        run = self.store.get_run(run_id)
        return JobStatus(run.status, f"fake:{run_id}", run.failure_reason)
