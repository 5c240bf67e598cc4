"""The HTTP contract: request and response bodies, kept apart from the domain.

Requests refuse fields they do not know (``extra="forbid"``); responses are built
from domain values by the explicit ``*_out`` functions below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from annotrain.domain.labelstudio import completion_to_json, task_to_json
from annotrain.domain.records import Project, UserRole
from annotrain.domain.tasks import Completion, CompletionState, Member, Role, Task
from annotrain.domain.training_plan import ModelSpec
from annotrain.services.access import Principal
from annotrain.services.projects import ConfigReport, description_of, language_of

NAME = Field(min_length=1, max_length=200)
# Revisions are 64-bit in every store: larger ones are refused, not looked up.
REVISION = Field(
    ge=1, le=2**63 - 1, strict=True, description="the revision you read; a stale one is a 409"
)
# Request numbers and booleans are strict: JSON false is not a lead time of 0, nor 1 true.
LEAD_TIME = Field(default=None, ge=0, le=1e9, strict=True, description="seconds spent")


class RequestBody(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class ProjectCreate(RequestBody):
    """A new project."""

    name: str = NAME
    labeling_config: str = Field(min_length=1, description="Label Studio XML")
    description: str = Field(default="", max_length=10_000)
    language: str = Field(
        default="en", description="picks the tokenizer and encoder: en, de, es, pt, it, da, ro"
    )


class ProjectUpdate(RequestBody):
    """What to change in a project; fields left out stay as they are."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    language: str | None = Field(default=None, description="en, de, es, pt, it, da, ro")


class ConfigUpdate(RequestBody):
    """A project's new labeling config."""

    labeling_config: str = Field(min_length=1, description="Label Studio XML")


class MemberPut(RequestBody):
    """A member's role and priority."""

    user: str = NAME
    role: Role
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000, strict=True)


class ProjectOut(BaseModel):
    """A project."""

    id: int
    name: str
    description: str
    language: str
    labeling_config: str
    created_by: str
    created_at: datetime
    revision: int
    my_role: Role | None = Field(
        description="your own role in the project; null for a lab admin who is not a member "
        "(admins may do everything). A hint for what to offer: every route checks roles itself"
    )


class ProjectPage(BaseModel):
    """One page of projects."""

    items: list[ProjectOut]
    total: int
    page: int
    page_size: int


class ModelOut(BaseModel):
    """A model the labeling config implies."""

    kind: str
    name: str
    labels: list[str]
    multi_label: bool
    from_names: list[str]
    to_names: list[str]
    pretrained: dict[str, list[str]]


class ConfigOut(BaseModel):
    """A labeling config that passed, with the models it implies."""

    labeling_config: str
    models: list[ModelOut]
    warnings: list[str]


class MemberOut(BaseModel):
    """A project member."""

    user: str
    role: Role
    priority: int


class MemberList(BaseModel):
    """A project's members, by user name."""

    items: list[MemberOut]


class UserOut(BaseModel):
    """Who is calling."""

    name: str = Field(description="the user name that project members and completions carry")
    role: UserRole = Field(
        description="the lab role: admin (may do everything in every project, and lab-wide "
        "things: licenses, backups) or user (their project roles decide)"
    )


class SystemOut(BaseModel):
    """What the lab is and what it runs on, and who is asking."""

    user: UserOut = Field(description="the caller")
    version: str
    mode: str
    gpu_available: bool
    gpu: str = Field(
        description='"GPU Resource Available" when a GPU is usable and useGPU is on, else "no GPU"'
    )
    use_gpu: bool = Field(description="the useGPU setting (ANNOTRAIN_USE_GPU)")
    license: str = Field(description="the licenses in force, in one line")
    license_scopes: list[str] = Field(description="what the licenses in force allow")
    cost_banner: str | None = Field(
        description="while a PAYG license is in force: the cost reminder (also in the "
        "X-Annotrain-Cost-Banner header of every response)"
    )


class CompletionCreate(RequestBody):
    """A completion of a task: Label Studio result items."""

    result: list[dict[str, Any]] = Field(description="Label Studio result items")
    draft: bool = Field(
        default=False, strict=True, description="keep it a draft instead of submitting it"
    )
    lead_time: float | None = LEAD_TIME


class CompletionUpdate(RequestBody):
    """What to change in a completion; fields left out stay as they are."""

    revision: int = REVISION
    result: list[dict[str, Any]] | None = Field(
        default=None, description="Label Studio result items"
    )
    lead_time: float | None = LEAD_TIME


class CompletionSubmit(RequestBody):
    """Submitting a draft."""

    revision: int = REVISION


class ReviewCreate(RequestBody):
    """A reviewer's verdict on a completion."""

    accepted: bool = Field(strict=True)
    comment: str = Field(default="", max_length=10_000)


class TaskImportOut(BaseModel):
    """Tasks imported, all of them."""

    imported: int
    task_ids: list[int]


class TaskPage(BaseModel):
    """One page of tasks, as Label Studio JSON."""

    items: list[dict[str, Any]]
    total: int


def project_out(project: Project, my_role: Role | None) -> ProjectOut:
    """A project as the API shows it to a reader whose role in it is ``my_role``."""
    return ProjectOut(
        id=project.id,
        name=project.name,
        description=description_of(project),
        language=language_of(project),
        labeling_config=project.label_config,
        created_by=project.created_by,
        created_at=project.created_at,
        revision=project.revision,
        my_role=my_role,
    )


def user_out(principal: Principal) -> UserOut:
    """The caller as ``GET /system`` shows them."""
    return UserOut(name=principal.name, role=principal.lab_role)


def model_out(spec: ModelSpec) -> ModelOut:
    """An implied model as the API shows it."""
    return ModelOut(
        kind=spec.kind.value,
        name=spec.name,
        labels=list(spec.labels),
        multi_label=spec.multi_label,
        from_names=list(spec.from_names),
        to_names=list(spec.to_names),
        pretrained={model: list(labels) for model, labels in spec.pretrained},
    )


def config_out(labeling_config: str, report: ConfigReport) -> ConfigOut:
    """A checked config as the API shows it."""
    return ConfigOut(
        labeling_config=labeling_config,
        models=[model_out(spec) for spec in report.models],
        warnings=list(report.warnings),
    )


def member_out(member: Member) -> MemberOut:
    """A member as the API shows it."""
    return MemberOut(user=member.user, role=member.role, priority=member.priority)


def completion_out(completion: Completion) -> dict[str, Any]:
    """A completion as Label Studio JSON, with ``draft`` and the ``revision`` to update it at."""
    # Label Studio lists drafts apart from annotations; one completion says which it is.
    return _versioned(completion_to_json(completion), completion)


def task_out(task: Task) -> dict[str, Any]:
    """A task as Label Studio JSON whose completions carry ``draft``, ``revision``, ``updated_at``.

    A client that reads a task (or a page of them) has what it needs to change a
    completion at the revision it read.
    """
    out = task_to_json(task)
    # task_to_json lists the submitted (and skipped) completions as annotations and the
    # drafts apart, each in the task's order: pair them up the same way.
    drafts = [c for c in task.completions if c.state is CompletionState.DRAFT]
    others = [c for c in task.completions if c.state is not CompletionState.DRAFT]
    for entry, completion in zip(out["annotations"], others, strict=True):
        _versioned(entry, completion)
    for entry, completion in zip(out.get("drafts", ()), drafts, strict=True):
        _versioned(entry, completion)
    return out


def _versioned(entry: dict[str, Any], completion: Completion) -> dict[str, Any]:
    entry["draft"] = completion.state is CompletionState.DRAFT
    entry["revision"] = completion.revision
    entry["updated_at"] = completion.updated_at
    return entry
