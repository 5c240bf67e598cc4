"""Trainings: start one, read it, list a project's, compare two, tail its log, cancel it.

Starting a training takes the project's Owner or a Manager (or an admin); reading
one any project role; cancelling one Owner or Manager. A training id is its run's
id; a run of another kind is not found as a training.

Starting checks everything first (parameters, models, language and base model,
GPU, split, data), then writes: the dataset snapshot to the blob store, the run as
``queued``, the job to the runner. A snapshot without a run is taken back; a run
whose job could not be submitted is marked failed with the reason, so no run is
left queued with nothing to run it.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from annotrain.domain.base_models import choose_base_model
from annotrain.domain.config import parse_labeling_config
from annotrain.domain.errors import (
    InvalidRequestError,
    JobRunnerUnavailableError,
    NotFoundError,
    RunStateError,
)
from annotrain.domain.labelstudio import result_to_json
from annotrain.domain.ocr import ocr_key
from annotrain.domain.records import JobKind, Project, Run, RunStatus
from annotrain.domain.selection import SelectionRules, select_training_completions
from annotrain.domain.snapshot import (
    Example,
    Part,
    TrainingParams,
    TrainingSnapshot,
)
from annotrain.domain.split import TEST_TAG, TRAIN_TAG, split_by_share, split_by_tags, task_key
from annotrain.domain.task_files import task_image_ids
from annotrain.domain.tasks import Completion, Member, Role, Task
from annotrain.domain.training_plan import ModelKind, ModelSpec, implied_models
from annotrain.ports import (
    MAX_PAGE_SIZE,
    BlobStore,
    Clock,
    JobRunner,
    JobSpec,
    LicenseStore,
    ModelStore,
    ProjectStore,
    RunStore,
    ServerStore,
    TaskStore,
    UsageMeter,
)
from annotrain.services.access import ANY_MEMBER, MANAGERS, Principal, authorize
from annotrain.services.archives import blob_files, zip_stream
from annotrain.services.licenses import Licensing, admit_run, confirm_admission
from annotrain.services.projects import check_language, language_of
from annotrain.services.run_lifecycle import mark_finished, submit_job
from annotrain.services.training_scripts import pin_to_run

#: The text kinds a training request may name.
TEXT_KINDS = (ModelKind.NER, ModelKind.ASSERTION, ModelKind.CLASSIFICATION)
#: Every kind a training request may name: the text kinds and Visual NER.
TRAINABLE_KINDS = (*TEXT_KINDS, ModelKind.VISUAL_NER)
CANCELLED_REASON = "cancelled by user"
#: The most lines ``?tail=`` returns.
MAX_TAIL_LINES = 10_000


class Source(StrEnum):
    """Who started a run."""

    MANUAL = "manual"
    ACTIVE_LEARNING = "active_learning"


class TrainingRecords(ProjectStore, RunStore, Protocol):
    """What the training routes read: projects (for roles) and runs."""


class TrainingStores(
    ProjectStore, TaskStore, RunStore, ServerStore, UsageMeter, LicenseStore, Protocol
):
    """What starting a training reads and writes (licenses: to admit the run)."""


@dataclass(frozen=True, slots=True)
class SplitRequest:
    """How to split: a seeded share for the test part, or Train/Test tags.

    Attributes:
        validation_share: The share of tasks scored on (0 < share < 1).
        train_tag: With ``test_tag``: tasks tagged so are trained on.
        test_tag: Tasks tagged so are scored on.
    """

    validation_share: float | None = 0.2
    train_tag: str | None = None
    test_tag: str | None = None

    def check(self) -> None:
        """Refuse a split that is neither shape, or both.

        Raises:
            InvalidRequestError: On ``split`` or ``split.validation_share``.
        """
        by_tags = self.train_tag is not None or self.test_tag is not None
        if by_tags and self.validation_share is not None:
            raise InvalidRequestError(
                "split",
                'give either {"validation_share": 0.2} or {"train_tag": "Train", '
                '"test_tag": "Test"}, not both',
            )
        if by_tags:
            if not (self.train_tag and self.test_tag):
                raise InvalidRequestError("split", "give both train_tag and test_tag")
            if self.train_tag.casefold() == self.test_tag.casefold():
                raise InvalidRequestError("split", "train_tag and test_tag must differ")
            return
        share = self.validation_share
        if share is None or isinstance(share, bool) or not 0 < share < 1:
            raise InvalidRequestError(
                "split.validation_share",
                f"must be above 0 and below 1, e.g. 0.2 (got {share!r}): the test part scores "
                "the model",
            )

    def to_json(self) -> dict[str, Any]:
        """The split as the request gave it."""
        if self.validation_share is not None:
            return {"validation_share": self.validation_share}
        return {"train_tag": self.train_tag, "test_tag": self.test_tag}


@dataclass(frozen=True, slots=True)
class TrainingRequest:
    """What a user asks of a training.

    Attributes:
        types: The kinds to train; None for every text kind the config implies.
        params: Training parameters (:class:`TrainingParams` names and ranges).
        base_model: The encoder to start from; None for the project language's default.
        split: How to split train and test.
        tags: Only tasks with one of these tags take part.
        reviewed_only: Only tasks with an accepted completion take part.
        use_gpu: Train on the GPU.
        deploy: Deploy the models when the run succeeds (active learning: only
            when they beat the deployed ones).
        classifiers: ``Choices`` names to train classifiers for.
    """

    types: tuple[ModelKind, ...] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    base_model: str | None = None
    split: SplitRequest = field(default_factory=SplitRequest)
    tags: tuple[str, ...] = ()
    reviewed_only: bool = False
    use_gpu: bool = False
    deploy: bool = True
    classifiers: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The request as JSON (kept on the run, and as the active-learning template)."""
        return {
            "types": None if self.types is None else [t.value for t in self.types],
            "params": dict(self.params),
            "base_model": self.base_model,
            "split": self.split.to_json(),
            "tags": list(self.tags),
            "reviewed_only": self.reviewed_only,
            "use_gpu": self.use_gpu,
            "deploy": self.deploy,
            "classifiers": None if self.classifiers is None else list(self.classifiers),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> TrainingRequest:
        """Read a request as :meth:`to_json` wrote it.

        Raises:
            InvalidRequestError: A type that is not a text model kind.
        """
        split = value.get("split") or {}
        types = value.get("types")
        classifiers = value.get("classifiers")
        return cls(
            types=None if types is None else parse_types(types),
            params=dict(value.get("params") or {}),
            base_model=value.get("base_model"),
            split=SplitRequest(
                split.get("validation_share"), split.get("train_tag"), split.get("test_tag")
            ),
            tags=tuple(value.get("tags") or ()),
            reviewed_only=bool(value.get("reviewed_only", False)),
            use_gpu=bool(value.get("use_gpu", False)),
            deploy=bool(value.get("deploy", True)),
            classifiers=None if classifiers is None else tuple(classifiers),
        )


def parse_types(values: Sequence[str]) -> tuple[ModelKind, ...]:
    """Model kinds named in a request.

    Raises:
        InvalidRequestError: On ``types``, naming the kinds a text training has.
    """
    kinds: list[ModelKind] = []
    known = {k.value: k for k in TRAINABLE_KINDS}
    for value in values:
        kind = known.get(value)
        if kind is None:
            raise InvalidRequestError(
                "types", f"{value!r} is not a model type; use: {', '.join(known)}"
            )
        kinds.append(kind)
    if not kinds:
        raise InvalidRequestError("types", "name at least one type, or leave types out")
    return tuple(dict.fromkeys(kinds))


@dataclass(frozen=True, slots=True)
class PreparedTraining:
    """A checked request, ready to write: the snapshot and what the run records."""

    snapshot: TrainingSnapshot
    data: Mapping[str, Any]


def new_run_id(kind: JobKind) -> str:
    """A fresh run id: the kind and 16 random hex digits (safe in keys and file names)."""
    return f"{kind.value}-{uuid.uuid4().hex[:16]}"


def snapshot_key(run_id: str) -> str:
    """Where a run's dataset snapshot lies in the blob store."""
    return f"runs/{run_id}/snapshot.json"


def log_key(run_id: str) -> str:
    """Where a run's log lies in the blob store."""
    return f"runs/{run_id}/log.txt"


def plan_models(project: Project, request: TrainingRequest) -> tuple[ModelSpec, ...]:
    """The models a request trains: those the config implies, of the kinds asked for.

    Raises:
        InvalidRequestError: ``types`` naming a kind the config does not imply (the
            message lists what it implies), or a config that implies no text model.
        LabelingConfigError: The config no longer passes.
    """
    schema = parse_labeling_config(project.label_config)
    implied = [s for s in implied_models(schema, request.classifiers) if s.kind in TRAINABLE_KINDS]
    implied_kinds = list(dict.fromkeys(s.kind.value for s in implied))
    if not implied:
        raise InvalidRequestError(
            "types",
            "the labeling config implies no model (no <Labels> or <Choices> on text, no "
            "<RectangleLabels> on an image): add labels to the config first",
        )
    if request.types is None:
        return tuple(implied)
    missing = [t.value for t in request.types if t.value not in implied_kinds]
    if missing:
        raise InvalidRequestError(
            "types",
            f"the labeling config implies no {', '.join(missing)} model; it implies: "
            f"{', '.join(implied_kinds)}",
        )
    return tuple(s for s in implied if s.kind in request.types)


def prepare_training(
    store: TrainingStores,
    project: Project,
    request: TrainingRequest,
    *,
    run_id: str,
    gpu_available: bool,
    blobs: BlobStore | None = None,
) -> PreparedTraining:
    """Check a request against the project and build its snapshot; writes nothing.

    A Visual NER model needs the OCR of each example's image: it is read from
    ``blobs`` (beside the image) into the example, so the snapshot stays the
    job's whole input.

    Raises:
        InvalidRequestError: Naming the field at fault: a parameter, ``types``,
            ``base_model``, ``language``, ``use_gpu``, ``split``, or ``data`` when the
            selection leaves nothing to train on (with the count of tasks skipped
            for each reason) or image tasks have no OCR yet (named).
    """
    params = TrainingParams.from_mapping(request.params)
    request.split.check()
    models = plan_models(project, request)
    language = check_language(language_of(project))
    base_model = choose_base_model(language, request.base_model)
    if request.use_gpu and not gpu_available:
        raise InvalidRequestError(
            "use_gpu",
            'this lab has no GPU to train on (GET /api/v1/system says "no GPU"): '
            "train with use_gpu false",
        )
    rules = SelectionRules(frozenset(request.tags), request.reviewed_only)
    selection = select_training_completions(
        store.iter_tasks(project.id), _all_members(store, project.id), rules
    )
    skipped = {reason.value: n for reason, n in selection.skipped.items()}
    parts, unassigned = _split(selection.chosen, request.split, params.seed)
    counts = {"train": len(parts[Part.TRAIN]), "test": len(parts[Part.TEST])}
    data: dict[str, Any] = {**counts, "skipped": skipped, "unassigned": unassigned}
    _check_parts(counts, skipped, unassigned, request)
    examples = tuple(
        Example(str(task.id), part, dict(task.data), tuple(result_to_json(completion.result)))
        for part, pairs in parts.items()
        for task, completion in pairs
    )
    if any(s.kind is ModelKind.VISUAL_NER for s in models):
        if blobs is None:
            raise ValueError("a Visual NER training reads OCR records: pass the blob store")
        examples = _with_ocr(blobs, project, examples)
    snapshot = TrainingSnapshot(
        run_id=run_id,
        project_id=project.id,
        language=language,
        base_model=base_model,
        params=params,
        models=models,
        examples=examples,
        label_config=project.label_config,
        use_gpu=request.use_gpu,
        selection={
            "tags": sorted(request.tags),
            "reviewed_only": request.reviewed_only,
            "split": request.split.to_json(),
            **data,
        },
    )
    data["fingerprint"] = snapshot.fingerprint
    return PreparedTraining(snapshot, data)


def start_training(
    store: TrainingStores,
    blobs: BlobStore,
    runner: JobRunner | None,
    principal: Principal,
    clock: Clock,
    project_id: int,
    request: TrainingRequest,
    *,
    gpu_available: bool,
    licensing: Licensing,
    allow_custom_scripts: bool = False,
) -> Run:
    """Start a training of a project's models (Owner, Manager, admin).

    Returns:
        The run as stored: ``queued`` (or further along already).

    Raises:
        InvalidRequestError: The request does not fit the project (see
            :func:`prepare_training`); nothing is written.
        JobRunnerUnavailableError: The app has no job runner; nothing is written.
        LicenseScopeError: No license in force grants ``training`` (``ocr:training``
            for Visual NER); nothing is written.
        ServerLimitError: The license's training servers are all taken; nothing is
            written (or, lost in a race, the run is stored as failed).
        JobSubmitError: The runner did not take the job; the run is marked failed.
        CustomScriptsDisabledError: The project has a training script and the lab
            does not allow custom scripts; nothing is written.
    """
    project = authorize(store, principal, project_id, MANAGERS, "starting a training")
    return submit_training(
        store, blobs, runner, clock, project, request,
        created_by=principal.name, source=Source.MANUAL, gpu_available=gpu_available,
        licensing=licensing,
        allow_custom_scripts=allow_custom_scripts,
    )  # fmt: skip


def submit_training(
    store: TrainingStores,
    blobs: BlobStore,
    runner: JobRunner | None,
    clock: Clock,
    project: Project,
    request: TrainingRequest,
    *,
    created_by: str,
    source: Source,
    gpu_available: bool,
    licensing: Licensing,
    allow_custom_scripts: bool = False,
) -> Run:
    """Check, write the snapshot and the run, submit the job (roles already checked).

    A project with a training script has it copied to the run's folder, and the
    job trains the run's NER model with it (``params["custom_script"]``).

    Raises:
        See :func:`start_training`.
    """
    run_id = new_run_id(JobKind.TRAIN)
    prepared = prepare_training(
        store, project, request, run_id=run_id, gpu_available=gpu_available, blobs=blobs
    )
    if runner is None:
        raise JobRunnerUnavailableError("start a training")
    admission = admit_run(
        store, licensing, clock, JobKind.TRAIN,
        model_kinds=[s.kind for s in prepared.snapshot.models], action="training",
    )  # fmt: skip
    ner_models = [s.name for s in prepared.snapshot.models if s.kind is ModelKind.NER]
    custom_script = (
        pin_to_run(blobs, project.id, run_id, allowed=allow_custom_scripts, model_names=ner_models)
        if ner_models
        else None
    )
    dataset_key = snapshot_key(run_id)
    blobs.put(
        dataset_key, io.BytesIO(prepared.snapshot.to_bytes()), content_type="application/json"
    )
    snapshot = prepared.snapshot
    run = Run(
        id=run_id,
        project_id=project.id,
        kind=JobKind.TRAIN,
        status=RunStatus.QUEUED,
        created_by=created_by,
        created_at=clock.now(),
        use_gpu=request.use_gpu,
        params={
            "source": source.value,
            "request": request.to_json(),
            "training": snapshot.params.to_json(),
            "language": snapshot.language,
            "base_model": snapshot.base_model,
            "models": [
                {"kind": s.kind.value, "name": s.name, "labels": list(s.labels)}
                for s in snapshot.models
            ],
            "deploy": request.deploy,
            "data": dict(prepared.data),
            **({"custom_script": custom_script} if custom_script else {}),
        },
        logs_key=log_key(run_id),
        dataset_key=dataset_key,
    )
    try:
        store.create_run(run)
    except BaseException:
        # A snapshot no run points at would never be read or cleaned: take it back.
        blobs.delete(dataset_key)
        if custom_script:
            blobs.delete(str(custom_script["key"]))
        raise
    confirm_admission(store, admission, run, clock)
    submit_job(store, runner, clock, JobSpec(JobKind.TRAIN, run_id, request.use_gpu))
    return store.get_run(run_id)


def _with_ocr(
    blobs: BlobStore, project: Project, examples: Sequence[Example]
) -> tuple[Example, ...]:
    """The examples with the OCR of their task's (first) uploaded image.

    Raises:
        InvalidRequestError: On ``data``: tasks whose image has no OCR yet, or that
            show no image uploaded to the project (named, with the fix).
    """
    schema = parse_labeling_config(project.label_config)
    out: list[Example] = []
    no_image: list[str] = []
    unread: list[str] = []
    for example in examples:
        image_ids = task_image_ids(example.data, schema, project.id)
        if not image_ids:
            no_image.append(example.task_id)
            continue
        record = None
        for image_id in image_ids:
            try:
                with blobs.open(ocr_key(project.id, image_id)) as stream:
                    record = json.load(stream)
                break
            except NotFoundError:
                continue
        if record is None:
            unread.append(example.task_id)
            continue
        out.append(replace(example, ocr=record))
    if no_image:
        raise InvalidRequestError(
            "data",
            f"{len(no_image)} task(s) with completions show no image uploaded to this project "
            f"(task ids {_ids(no_image)}): Visual NER reads the OCR of uploaded images; upload "
            f"them (POST /api/v1/projects/{project.id}/tasks/upload) and import the tasks "
            "with data.image set to the path the upload gives, or leave them out with tags",
        )
    if unread:
        raise InvalidRequestError(
            "data",
            f"{len(unread)} task(s) have no OCR of their image yet (task ids {_ids(unread)}): "
            f"run OCR first (POST /api/v1/projects/{project.id}/ocr), wait for it to succeed, "
            "then start the training again",
        )
    return tuple(out)


def _ids(task_ids: Sequence[str], shown: int = 20) -> str:
    more = len(task_ids) - shown
    return ", ".join(task_ids[:shown]) + (f" and {more} more" if more > 0 else "")


def _split(
    chosen: list[tuple[Task, Completion]], request: SplitRequest, seed: int
) -> tuple[dict[Part, list[tuple[Task, Completion]]], int]:
    def key(pair: tuple[Task, Completion]) -> str:
        return task_key(pair[0])

    if request.validation_share is not None:
        split = split_by_share(chosen, request.validation_share, seed, key)
    else:
        split = split_by_tags(
            chosen,
            lambda pair: pair[0].tags,
            request.train_tag or TRAIN_TAG,
            request.test_tag or TEST_TAG,
        )
    return {Part.TRAIN: split.train, Part.TEST: split.test}, len(split.unassigned)


def _check_parts(
    counts: Mapping[str, int],
    skipped: Mapping[str, int],
    unassigned: int,
    request: TrainingRequest,
) -> None:
    why = [f"{n} task(s) {reason}" for reason, n in skipped.items()]
    if unassigned:
        why.append(
            f"{unassigned} task(s) tagged neither {request.split.train_tag!r} nor "
            f"{request.split.test_tag!r} (or both)"
        )
    left_out = f" Left out: {'; '.join(why)}." if why else ""
    if counts["train"] == 0:
        raise InvalidRequestError(
            "data",
            "no task gives a training example: submit completions (or accept them, "
            f"with reviewed_only), or change the tags or the split.{left_out}",
        )
    if counts["test"] == 0:
        raise InvalidRequestError(
            "data",
            f"the test part is empty ({counts['train']} training example(s)): a model is "
            "scored on it; complete more tasks, or tag some for the test part." + left_out,
        )


def _all_members(store: ProjectStore, project_id: int) -> list[Member]:
    members: list[Member] = []
    token: str | None = None
    while True:
        page = store.list_members(project_id, limit=MAX_PAGE_SIZE, token=token)
        members.extend(page.items)
        if page.next_token is None:
            return members
        token = page.next_token


# --- reading -------------------------------------------------------------------------


def list_trainings(
    store: TrainingRecords, principal: Principal, project_id: int, *, page: int, page_size: int
) -> tuple[list[Run], int]:
    """One page of a project's trainings, newest first, and their total (any member)."""
    authorize(store, principal, project_id, ANY_MEMBER, "listing trainings")
    if page < 1:
        raise InvalidRequestError("page", "must be 1 or more")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidRequestError("page_size", f"must be 1 to {MAX_PAGE_SIZE}")
    runs = [r for r in iter_runs(store, project_id) if r.kind is JobKind.TRAIN]
    start = (page - 1) * page_size
    return runs[start : start + page_size], len(runs)


def iter_runs(store: RunStore, project_id: int) -> Iterator[Run]:
    """Every run of a project, newest first."""
    token: str | None = None
    while True:
        batch = store.list_runs(project_id, limit=MAX_PAGE_SIZE, token=token)
        yield from batch.items
        if batch.next_token is None:
            return
        token = batch.next_token


def read_training(store: TrainingRecords, principal: Principal, training_id: str) -> Run:
    """A training's status, progress, metrics and data (any member)."""
    return _authorize_training(store, principal, training_id, ANY_MEMBER, "reading a training")


def compare_trainings(
    store: TrainingRecords, principal: Principal, training_ids: Sequence[str]
) -> dict[str, Any]:
    """Two (or more) trainings side by side: parameters that differ, data, scores per label.

    Raises:
        InvalidRequestError: On ``ids``: fewer than two, more than ten, or repeated.
        NotFoundError: A training that does not exist or the caller may not read.
    """
    ids = [i for i in training_ids if i]
    if not 2 <= len(ids) <= 10 or len(set(ids)) != len(ids):
        raise InvalidRequestError("ids", "name 2 to 10 distinct training ids, comma-separated")
    runs = [_authorize_training(store, principal, i, ANY_MEMBER, "reading a training") for i in ids]
    return compare_runs(runs)


def compare_runs(runs: Sequence[Run]) -> dict[str, Any]:
    """What differs between runs: parameters, data counts, and each model's scores per label."""
    flat = [_flatten(_comparable_params(r)) for r in runs]
    names = sorted({name for params in flat for name in params})
    differing = {
        name: [params.get(name) for params in flat]
        for name in names
        if len({repr(params.get(name)) for params in flat}) > 1
    }
    models = sorted({m for r in runs for m in _model_metrics(r)})
    scores: dict[str, Any] = {}
    for model in models:
        per_run = [_model_metrics(r).get(model, {}) for r in runs]
        labels = sorted({label for m in per_run for label in (m.get("per_label") or {})})
        scores[model] = {
            "micro": [m.get("micro") for m in per_run],
            "macro": [m.get("macro") for m in per_run],
            "per_label": {
                label: [(m.get("per_label") or {}).get(label) for m in per_run] for label in labels
            },
        }
    return {
        "ids": [r.id for r in runs],
        "status": [r.status.value for r in runs],
        "created_at": [r.created_at.isoformat() for r in runs],
        "params": differing,
        "data": [dict(r.params.get("data") or {}) for r in runs],
        "metrics": scores,
    }


def _comparable_params(run: Run) -> dict[str, Any]:
    request = run.params.get("request") or {}
    return {
        "training": run.params.get("training") or {},
        "base_model": run.params.get("base_model"),
        "language": run.params.get("language"),
        "source": run.params.get("source"),
        "split": request.get("split"),
        "tags": request.get("tags"),
        "reviewed_only": request.get("reviewed_only"),
        "use_gpu": run.use_gpu,
        "models": [m.get("name") for m in run.params.get("models") or ()],
    }


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, item in value.items():
        if isinstance(item, Mapping):
            out.update(_flatten(item, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = item
    return out


def _model_metrics(run: Run) -> Mapping[str, Mapping[str, Any]]:
    models = run.metrics.get("models")
    return models if isinstance(models, Mapping) else {}


def read_training_log(
    store: TrainingRecords,
    blobs: BlobStore,
    principal: Principal,
    training_id: str,
    *,
    tail: int | None = None,
) -> str:
    """A training's log as the job last wrote it, or its last ``tail`` lines (any member).

    A run whose job has written nothing yet has an empty log.
    """
    run = _authorize_training(store, principal, training_id, ANY_MEMBER, "reading a log")
    if tail is not None and not 1 <= tail <= MAX_TAIL_LINES:
        raise InvalidRequestError("tail", f"must be 1 to {MAX_TAIL_LINES} lines")
    return read_run_log(blobs, run, tail=tail)


def read_run_log(blobs: BlobStore, run: Run, *, tail: int | None = None) -> str:
    """A run's log text (empty before its job wrote one), or its last ``tail`` lines."""
    if run.logs_key is None:
        return ""
    try:
        with blobs.open(run.logs_key) as stream:
            text = stream.read().decode("utf-8", errors="replace")
    except NotFoundError:
        return ""
    if tail is None:
        return text
    lines = text.splitlines(keepends=True)
    return "".join(lines[-tail:])


class ReportRecords(TrainingRecords, ModelStore, Protocol):
    """What a training report reads: the run, and the models it registered."""


def training_report(
    store: ReportRecords,
    blobs: BlobStore,
    principal: Principal,
    training_id: str,
    *,
    summarize: Callable[[Run], bytes],
) -> Iterator[bytes]:
    """A training's report as a zip archive, streamed (any member).

    The archive holds ``training.json`` (``summarize(run)``: the run as the API
    shows it, from the one read that also checked the caller's role),
    ``training.log`` (the log as the job wrote it) and, per model version the run
    registered, ``<model>-v<version>/annotrain.json`` (labels, parameters, metrics,
    history) and ``<model>-v<version>/plots/*.png`` (learning curve, confusion
    matrices); never the weights. A run that registered no model (queued, running,
    failed) has the first two only.

    Raises:
        NotFoundError: No such training, or one the principal may not see.
    """
    run = _authorize_training(store, principal, training_id, ANY_MEMBER, "reading a report")
    texts = [
        ("training.json", summarize(run)),
        ("training.log", read_run_log(blobs, run).encode("utf-8")),
    ]
    members: list[tuple[str, str]] = []
    for item in run.metrics.get("registered", ()):
        entry = store.get_model(str(item["name"]), int(item["version"]))
        prefix = entry.artifact_key.rstrip("/") + "/"
        folder = f"{entry.name}-v{entry.version}"
        members += [
            (f"{folder}/{info.key.removeprefix(prefix)}", info.key)
            for info in blob_files(blobs, prefix)
            if info.key == f"{prefix}annotrain.json"
            or (info.key.startswith(f"{prefix}plots/") and info.key.endswith(".png"))
        ]
    return zip_stream(blobs, members, texts)


def cancel_training(
    store: TrainingStores,
    runner: JobRunner | None,
    clock: Clock,
    principal: Principal,
    training_id: str,
) -> Run:
    """Cancel a training (Owner, Manager, admin): idempotent for a cancelled one.

    The run is marked cancelled at once and its job is asked to stop (the runner
    stops its process; without a runner, the job sees the status at its next
    heartbeat and stops itself).

    Raises:
        RunStateError: The run had already succeeded or failed.
    """
    run = _authorize_training(store, principal, training_id, MANAGERS, "cancelling a training")
    return cancel_run(store, runner, clock, run)


def cancel_run(store: TrainingStores, runner: JobRunner | None, clock: Clock, run: Run) -> Run:
    """Cancel a run (roles already checked); see :func:`cancel_training`."""
    if not run.status.is_final:
        if runner is not None:
            runner.cancel(run.id)
        else:
            mark_finished(
                store, run.id, RunStatus.CANCELLED, at=clock.now(), reason=CANCELLED_REASON
            )
        run = store.get_run(run.id)
    if run.status is not RunStatus.CANCELLED:
        raise RunStateError(run.id, run.status.value, "cancelling it")
    return run


def _authorize_training(
    store: TrainingRecords,
    principal: Principal,
    training_id: str,
    roles: frozenset[Role],
    action: str,
) -> Run:
    # A run of another kind, or of a project the caller is not in, is no training of theirs.
    return authorize_run(store, principal, training_id, JobKind.TRAIN, roles, action, "training")


def authorize_run(
    store: TrainingRecords,
    principal: Principal,
    run_id: str,
    kind: JobKind,
    roles: frozenset[Role],
    action: str,
    what: str,
) -> Run:
    """The run, if it is of ``kind`` and the principal may do ``action`` in its project.

    Raises:
        NotFoundError: As ``what``: no such run, another kind, or not the caller's project.
        PermissionDeniedError: A member whose role is not among ``roles``.
    """
    try:
        run = store.get_run(run_id)
    except NotFoundError:
        raise NotFoundError(what, run_id) from None
    if run.kind is not kind:
        raise NotFoundError(what, run_id)
    try:
        authorize(store, principal, run.project_id, roles, action)
    except NotFoundError:
        raise NotFoundError(what, run_id) from None
    return run


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def registry_name(project_id: int, spec_name: str) -> str:
    """The registry name of a project's model: ``project3-ner``, ``project3-sentiment``.

    Unique across the lab (the registry is lab-wide) and safe in blob keys and configs.
    """
    safe = _UNSAFE_NAME.sub("-", spec_name).strip("-.") or "model"
    return f"project{project_id}-{safe}"[:200]


def run_source(run: Run) -> Source:
    """Who started a run (manual unless it says otherwise)."""
    value = run.params.get("source", Source.MANUAL.value)
    return Source(value) if value in {s.value for s in Source} else Source.MANUAL
