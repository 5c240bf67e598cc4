"""Pre-annotation: the route exists and checks roles; the job lands with issues 5 and 6.

Pre-annotating takes the project's Owner or a Manager (or an admin); it then
answers :class:`~annotrain.domain.errors.NotImplementedYetError`.
"""

from __future__ import annotations

from annotrain.domain.errors import NotImplementedYetError
from annotrain.domain.records import Run
from annotrain.ports import ProjectStore
from annotrain.services.access import MANAGERS, Principal, authorize

PREANNOTATION_ISSUES = (
    "issue 5 (pre-annotation of text: batch_jobs.preannotate) and issue 6 (Visual NER on images)"
)


def start_preannotation(store: ProjectStore, principal: Principal, project_id: int) -> Run:
    """Pre-annotate a project's tasks with its deployed models (not implemented yet)."""
    authorize(store, principal, project_id, MANAGERS, "pre-annotating tasks")
    raise NotImplementedYetError("pre-annotating tasks", PREANNOTATION_ISSUES)
