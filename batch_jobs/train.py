"""``python -m batch_jobs.train --run-id …``: train a run's models from its snapshot.

The job reads the run and its dataset snapshot, logs the parameters and data,
calls the trainer (``batch_jobs.text``'s ``train_snapshot``, resolved when the job
runs) with progress, the live log and the stop request wired to the run, then
uploads each model folder and its plots to ``models/<name>/<run id>/``, registers
each as the next version of its name, stores the metrics on the run and, when
the run asked, deploys the models into the project. A run started by active
learning deploys only models that beat the deployed version of their name on this
run's test split (micro F1), and records the decision and why.

Files go up before any registry entry is written, so an entry always points at
whole files; a failure leaves no half-registered model.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from annotrain.domain.errors import AnnotrainError, CustomScriptsDisabledError
from annotrain.domain.ocr import page_from_json
from annotrain.domain.records import ModelEntry, Run
from annotrain.domain.scoring import micro_f1, rectangles_micro_f1
from annotrain.domain.snapshot import Part, TrainingSnapshot
from annotrain.domain.training_plan import ModelKind, ModelSpec
from annotrain.ports import (
    BlobStore,
    PredictorLoader,
    Store,
    TrainedModel,
    Trainer,
    TrainingProgress,
)
from annotrain.services.models import deploy_into, deployed_models
from annotrain.services.trainings import Source, registry_name, run_source
from annotrain.settings import get_settings
from batch_jobs.custom_script import run_training_script
from batch_jobs.job_io import (
    PREDICTOR_MODULES,
    TRAINER_MODULES,
    RunLogger,
    ThrottledProgress,
    download_folder,
    full_store,
    resolve,
    upload_file,
    upload_folder,
)
from batch_jobs.runtime import JobContext, main

_LOG = logging.getLogger("batch_jobs.train")


def default_trainer() -> Trainer:
    """``train_snapshot`` of the model code, imported now (torch loads here, not before)."""
    trainer: Trainer = resolve(TRAINER_MODULES, "train_snapshot")
    return trainer


def default_loader() -> PredictorLoader:
    """``load_models`` of the model code, imported now."""
    loader: PredictorLoader = resolve(PREDICTOR_MODULES, "load_models")
    return loader


@dataclass(frozen=True, slots=True)
class Registered:
    """A trained model as the registry holds it, with what deploying it decided."""

    entry: ModelEntry
    model: TrainedModel


def train(
    context: JobContext,
    *,
    trainer: Callable[[], Trainer] = default_trainer,
    loader: Callable[[], PredictorLoader] = default_loader,
    work_dir: Path | None = None,
    allow_custom_scripts: Callable[[], bool] = lambda: get_settings().allow_custom_scripts,
    script_timeout_s: Callable[[], float] = lambda: get_settings().custom_script_timeout_seconds,
) -> None:
    """Train the run's models (the job's work; see the module docstring).

    Args:
        context: The job's run, store, blob store and stop request.
        trainer: Returns the trainer; resolved only now, so tests pass a fake.
        loader: Returns the predictor loader (active learning compares the
            deployed model on this run's test split).
        work_dir: Where the models are written before upload (a temporary folder).
        allow_custom_scripts: Whether this lab runs custom training scripts (the
            job's ``ANNOTRAIN_ALLOW_CUSTOM_SCRIPTS``); a run that has one fails when not.
        script_timeout_s: How long a custom script may run.

    Raises:
        AnnotrainError: What went wrong, in words for the run's failure reason.
    """
    store = full_store(context)
    blobs = context.blob_store()
    run = context.run()
    if run.dataset_key is None:
        raise AnnotrainError(f"run {run.id} has no dataset snapshot: start the training again")
    with blobs.open(run.dataset_key) as stream:
        snapshot = TrainingSnapshot.from_bytes(stream.read())
    with RunLogger(blobs, run) as run_log, tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        log = run_log.logger
        _log_plan(log, run, snapshot)
        progress = ThrottledProgress(context)

        def on_progress(point: TrainingProgress) -> None:
            progress(_progress_point(point))

        device = "cuda" if snapshot.use_gpu else "cpu"
        scripted, rest = _custom_script_models(run, snapshot, allow_custom_scripts)
        models: list[TrainedModel] = []
        if rest:
            models += trainer()(
                replace(snapshot, models=rest),
                Path(tmp) / "models",
                device=device,
                on_progress=on_progress,
                log=log,
                should_stop=context.stop_requested.is_set,
            )
        for spec in scripted:
            if context.stop_requested.is_set():
                break
            models.append(
                _run_script(blobs, run, snapshot, spec, Path(tmp) / "script" / spec.name, log,
                            context, script_timeout_s())
            )  # fmt: skip
        progress.flush()
        if context.stop_requested.is_set():
            # The run is cancelled already (whoever asked marked it): leave it so.
            log.info("cancelled: nothing is registered")
            return
        _log_metrics(log, models)
        registered = [_register(store, blobs, run, snapshot, model, context) for model in models]
        metrics = _run_metrics(registered)
        decisions = _deploy(store, blobs, run, snapshot, registered, loader, log, Path(tmp))
        history = [
            {"model": r.entry.name, **dict(point)} for r in registered for point in r.model.history
        ]
        context.update_run(
            lambda stored: replace(
                stored,
                metrics={**metrics, "deploy": decisions},
                history=tuple(history) or stored.history,
                progress=100.0,
            )
        )
        log.info("done: %d model(s) registered", len(registered))


def _custom_script_models(
    run: Run, snapshot: TrainingSnapshot, allowed: Callable[[], bool]
) -> tuple[tuple[ModelSpec, ...], tuple[ModelSpec, ...]]:
    """The models the run's custom script trains, and those the default trainer does."""
    pinned = run.params.get("custom_script")
    if not pinned:
        return (), snapshot.models
    if not allowed():
        raise CustomScriptsDisabledError("running this run's custom training script")
    names = set(pinned.get("models") or ())
    scripted = tuple(s for s in snapshot.models if s.kind is ModelKind.NER and s.name in names)
    return scripted, tuple(s for s in snapshot.models if s not in scripted)


def _run_script(
    blobs: BlobStore,
    run: Run,
    snapshot: TrainingSnapshot,
    spec: ModelSpec,
    work_dir: Path,
    log: logging.Logger,
    context: JobContext,
    timeout_s: float,
) -> TrainedModel:
    pinned = run.params["custom_script"]
    work_dir.mkdir(parents=True)
    script = work_dir.parent / f"{spec.name}.py"
    with blobs.open(str(pinned["key"])) as stream:
        content = stream.read()
    if hashlib.sha256(content).hexdigest() != pinned.get("sha256"):
        raise AnnotrainError(
            f"the run's training script ({pinned['key']}) is not the one the run recorded: "
            "start the training again"
        )
    script.write_bytes(content)
    return run_training_script(
        script, snapshot, spec, work_dir,
        timeout_s=timeout_s, log=log, should_stop=context.stop_requested.is_set,
    )  # fmt: skip


def _log_plan(log: logging.Logger, run: Run, snapshot: TrainingSnapshot) -> None:
    counts = {part.value: len(snapshot.part(part)) for part in Part}
    log.info("run %s (project %s, %s)", run.id, run.project_id, run_source(run).value)
    log.info("base model %s, language %s, device %s", snapshot.base_model, snapshot.language,
             "cuda" if snapshot.use_gpu else "cpu")  # fmt: skip
    log.info("parameters: %s", snapshot.params.to_json())
    log.info("data: %d train, %d test (snapshot %s)", counts["train"], counts["test"],
             snapshot.fingerprint)  # fmt: skip
    skipped = snapshot.selection.get("skipped") or {}
    for reason, count in skipped.items():
        log.info("left out: %s task(s) %s", count, reason)
    for spec in snapshot.models:
        log.info("model %s (%s): %s", spec.name, spec.kind.value, ", ".join(spec.labels))


def _progress_point(point: TrainingProgress) -> dict[str, Any]:
    return {
        "percent": point.percent,
        "epoch": point.epoch,
        "step": point.step,
        "total_steps": point.total_steps,
        "loss": point.loss,
        "model": point.model_name,
        "message": point.message,
    }


def _log_metrics(log: logging.Logger, models: Sequence[TrainedModel]) -> None:
    for model in models:
        metrics = model.metrics
        log.info("%s: micro %s, macro %s", model.spec.name, metrics.get("micro"),
                 metrics.get("macro"))  # fmt: skip
        for label, scores in (metrics.get("per_label") or {}).items():
            log.info("  %s: %s", label, scores)


def _register(
    store: Store,
    blobs: BlobStore,
    run: Run,
    snapshot: TrainingSnapshot,
    model: TrainedModel,
    context: JobContext,
) -> Registered:
    name = registry_name(run.project_id, model.spec.name)
    prefix = f"models/{name}/{run.id}"
    upload_folder(blobs, model.directory, prefix)
    for plot in model.plots:
        if not plot.resolve().is_relative_to(model.directory.resolve()):
            upload_file(blobs, plot, f"{prefix}/plots/{plot.name}")
    entry = store.register_model(
        ModelEntry(
            name=name,
            version=0,
            kind=model.spec.kind,
            labels=model.spec.labels,
            project_id=run.project_id,
            run_id=run.id,
            artifact_key=prefix,
            base_model=snapshot.base_model,
            created_at=context.clock.now(),
            metrics=dict(model.metrics),
        )
    )
    return Registered(entry, model)


def _run_metrics(registered: Sequence[Registered]) -> dict[str, Any]:
    registry = [
        {"name": r.entry.name, "version": r.entry.version, "kind": r.entry.kind.value,
         "spec": r.model.spec.name}
        for r in registered
    ]  # fmt: skip
    return {"models": {r.entry.name: dict(r.model.metrics) for r in registered},
            "registered": registry}  # fmt: skip


def _deploy(
    store: Store,
    blobs: BlobStore,
    run: Run,
    snapshot: TrainingSnapshot,
    registered: Sequence[Registered],
    loader: Callable[[], PredictorLoader],
    log: logging.Logger,
    work_dir: Path,
) -> list[dict[str, Any]]:
    """Deploy what the run asked to; returns each model's decision and why."""
    decisions: list[dict[str, Any]] = []
    if not run.params.get("deploy", False):
        return [{"model": r.entry.name, "deployed": False, "why": "deploy was not asked"}
                for r in registered]  # fmt: skip
    current = {e.name: e for e in deployed_models(store, run.project_id)}
    for item in registered:
        entry = item.entry
        why = "deploy was asked"
        if run_source(run) is Source.ACTIVE_LEARNING and entry.name not in current:
            why = "active learning: no version of it was deployed yet"
        elif run_source(run) is Source.ACTIVE_LEARNING:
            beats, why = _beats_deployed(
                blobs, current[entry.name], item, snapshot, loader, work_dir
            )
            if not beats:
                log.info("%s v%d not deployed: %s", entry.name, entry.version, why)
                decisions.append({"model": entry.name, "version": entry.version,
                                  "deployed": False, "why": why})  # fmt: skip
                continue
        deploy_into(store, run.project_id, entry)
        log.info("%s v%d deployed into project %s: %s", entry.name, entry.version,
                 run.project_id, why)  # fmt: skip
        decisions.append({"model": entry.name, "version": entry.version, "deployed": True,
                          "why": why})  # fmt: skip
    return decisions


def _beats_deployed(
    blobs: BlobStore,
    deployed: ModelEntry,
    item: Registered,
    snapshot: TrainingSnapshot,
    loader: Callable[[], PredictorLoader],
    work_dir: Path,
) -> tuple[bool, str]:
    """Score the deployed version on this run's test split; the new one must do better."""
    test = snapshot.part(Part.TEST)
    folder = work_dir / "deployed" / f"{deployed.name}-v{deployed.version}"
    download_folder(blobs, deployed.artifact_key, folder)
    predictor = loader()([folder], device="cuda" if snapshot.use_gpu else "cpu")
    predictions = predictor.predict([
        {"id": e.task_id, "data": dict(e.data), **({"ocr": e.ocr} if e.ocr is not None else {})}
        for e in test
    ])  # fmt: skip
    labels = set(item.model.spec.labels)
    gold = [list(e.result) for e in test]
    predicted = [list(p.result) for p in predictions]
    if item.model.spec.kind is ModelKind.VISUAL_NER:
        # Rectangles never match exactly: score both on the words they hold, as training does.
        pages = [page_from_json(e.ocr) if e.ocr is not None else None for e in test]
        old = rectangles_micro_f1(gold, predicted, pages, labels)
    else:
        old = micro_f1(gold, predicted, labels)
    new = _micro_f1_of(item.model.metrics)
    if new is None:
        return False, "the new model reported no micro F1 to compare"
    verdict = new > old
    why = (
        f"micro F1 on this run's test split ({len(test)} tasks): new v{item.entry.version} "
        f"{new:.4f} vs deployed v{deployed.version} {old:.4f}"
    )
    return verdict, why


def _micro_f1_of(metrics: Mapping[str, Any]) -> float | None:
    micro = metrics.get("micro")
    if isinstance(micro, Mapping):
        value = micro.get("f1")
        return float(value) if isinstance(value, int | float) else None
    return float(micro) if isinstance(micro, int | float) else None


if __name__ == "__main__":
    main(train)
