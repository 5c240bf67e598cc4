"""Export use case: a project's tasks as Label Studio JSON, JSON_MIN, CSV or CoNLL.

Any member (or admin) may export. An Annotator's export holds only their own
completions, as everything else they read does; the others' see all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from annotrain.domain.conll import to_conll
from annotrain.domain.export import ExportFilter, ExportFormat, filter_for_export, render_tasks
from annotrain.domain.selection import select_training_completions
from annotrain.domain.tasks import Role, Task
from annotrain.ports import ProjectStore, TaskQuery, TaskStore
from annotrain.services.access import ANY_MEMBER, Principal, authorize, find_member
from annotrain.services.projects import list_members, parsed_config
from annotrain.services.tasks import only_completions_by

T = TypeVar("T")


class _Stores(ProjectStore, TaskStore, Protocol):
    """What export needs: a project store that keeps tasks too."""


@dataclass(frozen=True, slots=True)
class Export:
    """An export under way: what it is, and its text, produced as it is read.

    Attributes:
        media_type: Its HTTP media type.
        filename: The name to save it under.
        chunks: The text, piece by piece; reading it reads the store.
    """

    media_type: str
    filename: str
    chunks: Iterator[str]


_MEDIA = {
    ExportFormat.JSON: ("application/json", "json"),
    ExportFormat.JSON_MIN: ("application/json", "min.json"),
    ExportFormat.CSV: ("text/csv; charset=utf-8", "csv"),
    ExportFormat.CONLL: ("text/plain; charset=utf-8", "conll"),
}


def export_tasks(
    store: _Stores,
    principal: Principal,
    project_id: int,
    export_format: ExportFormat,
    query: TaskQuery | None = None,
    rules: ExportFilter | None = None,
) -> Export:
    """Export a project's matching tasks (any member, admin).

    Everything that can refuse the export (access, a config without NER for
    CoNLL) is checked before this returns; the tasks are read as the chunks are.

    Args:
        query: Which tasks (tags, with or without completions or predictions).
        rules: Which completions (ground truth only, by annotator) and whether
            tasks left without a submitted one are left out.

    Raises:
        InvalidRequestError: CoNLL for a config with no NER labels on text.
    """
    project = authorize(store, principal, project_id, ANY_MEMBER, "exporting")
    rules = rules or ExportFilter()
    only_own = not principal.is_admin and _role(store, project_id, principal) == Role.ANNOTATOR

    def tasks() -> Iterator[Task]:
        found: Iterable[Task] = store.iter_tasks(project_id, query)
        if only_own:
            found = (only_completions_by(task, principal.name) for task in found)
        return filter_for_export(found, rules)

    media_type, suffix = _MEDIA[export_format]
    chunks: Iterator[str]
    if export_format is not ExportFormat.CONLL:
        chunks = render_tasks(tasks(), export_format)
    else:
        members = list_members(store, principal, project_id)
        schema = parsed_config(project.label_config)
        # to_conll checks the config at once; the selection runs as chunks are read.
        pairs = _lazy(lambda: select_training_completions(tasks(), members).chosen)
        chunks = iter(to_conll(pairs, schema))
    return Export(media_type, f"project-{project_id}.{suffix}", chunks)


def _role(store: _Stores, project_id: int, principal: Principal) -> Role | None:
    member = find_member(store, project_id, principal.name)
    return None if member is None else member.role


def _lazy(make: Callable[[], Iterable[T]]) -> Iterator[T]:
    yield from make()
