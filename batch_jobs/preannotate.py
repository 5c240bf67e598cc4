"""``python -m batch_jobs.preannotate --run-id …``: predict for tasks and store the predictions.

The job reads the run (its models and tasks), downloads each model's folder into a
temporary folder, loads them together (``batch_jobs.text``'s ``load_models``,
resolved when the job runs) and predicts the tasks in batches: every task without a
submitted completion, or the tasks the run names. With a Visual NER model, each
image task's OCR (stored beside its image) goes to the models with it; a task not
OCR'd yet gets no rectangles and is named in the log; where the config has a
per-region ``<TextArea>`` on the image, each predicted rectangle gets a
transcription: the OCR words it holds; where it labels image regions with
``<Labels>`` and ``<Rectangle>`` (the OCR template), rectangles are written that
way. Each prediction is checked
against the project's labeling config as an import is, and stored with its
``model_version``, task score and per-item scores, in place of the prediction an
earlier run made with any of the same models (by registry name): a task keeps one
prediction per model, and predictions imported with the tasks stay. A batch is
stored whole or not at all (on DynamoDB: each task whole). Progress is written
every few seconds; a cancel stops it between batches.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from annotrain.domain.config import ProjectSchema, parse_labeling_config
from annotrain.domain.errors import AnnotrainError, NotFoundError
from annotrain.domain.labelstudio import parse_tasks
from annotrain.domain.layout import as_image_labels, transcribe_regions
from annotrain.domain.ocr import ocr_key, page_from_json
from annotrain.domain.records import Run
from annotrain.domain.task_files import task_image_ids
from annotrain.domain.tasks import Prediction, Task
from annotrain.domain.training_plan import ModelKind
from annotrain.ports import BlobStore, PredictorLoader, Store, TaskQuery
from batch_jobs.job_io import RunLogger, ThrottledProgress, download_folder, full_store
from batch_jobs.runtime import JobContext, main
from batch_jobs.train import default_loader

BATCH_SIZE = 256
"""Tasks per predict call and per store transaction: the predictor sorts them by length."""


def preannotate(
    context: JobContext,
    *,
    loader: Callable[[], PredictorLoader] = default_loader,
    work_dir: Path | None = None,
    batch_size: int = BATCH_SIZE,
) -> None:
    """Predict the run's tasks with its models and store the predictions (the job's work).

    Raises:
        AnnotrainError: What went wrong, in words for the run's failure reason.
    """
    store = full_store(context)
    blobs = context.blob_store()
    run = context.run()
    models = list(run.params.get("models") or ())
    if not models:
        raise AnnotrainError(f"run {run.id} names no model to predict with")
    task_ids = run.params.get("task_ids")
    names = sorted({str(model["name"]) for model in models})
    project = store.get_project(run.project_id)
    schema = parse_labeling_config(project.label_config)
    with RunLogger(blobs, run) as run_log, tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        log = run_log.logger
        folders = []
        for model in models:
            folder = Path(tmp) / f"{model['name']}-v{model['version']}"
            download_folder(blobs, str(model["artifact_key"]), folder)
            folders.append(folder)
            log.info("model %s v%s (%s)", model["name"], model["version"], model["kind"])
        predictor = loader()(folders, device="cuda" if run.use_gpu else "cpu")
        visual = any(str(m["kind"]) == ModelKind.VISUAL_NER.value for m in models)
        text_controls = schema.region_text_controls() if visual else {}
        image_labels = schema.image_label_controls() if visual else {}
        total = len(task_ids) if task_ids is not None else _count(store, run.project_id)
        log.info("tasks to pre-annotate: %d", total)
        progress = ThrottledProgress(context)
        done = 0
        for batch in _batches(_tasks(store, run.project_id, task_ids), batch_size):
            if context.stop_requested.is_set():
                log.info("cancelled after %d task(s)", done)
                return
            inputs = [{"id": t.id, "data": dict(t.data)} for t in batch]
            if visual:
                unread = _attach_ocr(blobs, schema, run.project_id, batch, inputs)
                if unread:
                    log.warning(
                        "%d task(s) have no OCR of their image, so no rectangles (tasks %s): "
                        "run OCR on them and pre-annotate again", len(unread),
                        ", ".join(str(t) for t in unread[:20]),
                    )  # fmt: skip
            predictions = predictor.predict(inputs)
            checked = []
            for task, item, prediction in zip(batch, inputs, predictions, strict=True):
                result = as_image_labels(prediction.result, image_labels)
                result = _transcribed(result, item, text_controls)
                checked.append((int(task.id or 0), _checked(task, result, prediction, schema)))
            store.replace_predictions(run.project_id, checked, models=names)
            done += len(batch)
            progress({"percent": 100 * done / max(total, 1), "tasks": done})
            context.update_run(_predicted(done))
        progress.flush()
        log.info("done: %d task(s) pre-annotated", done)


def _predicted(count: int) -> Callable[[Run], Run]:
    """A run change recording how many tasks have their prediction."""
    return lambda run: replace(run, metrics={**run.metrics, "predicted": count})


def _transcribed(
    result: Sequence[Any], task_input: dict[str, Any], text_controls: dict[str, str]
) -> list[dict[str, Any]]:
    """The result, its rectangles transcribed from the task's OCR where the config asks."""
    if not text_controls or task_input.get("ocr") is None:
        return [dict(item) for item in result]
    page = page_from_json(task_input["ocr"])
    return transcribe_regions(result, page.words, page.width, page.height, text_controls)


def _checked(
    task: Task, result: list[dict[str, Any]], prediction: Any, schema: ProjectSchema
) -> Prediction:
    """The prediction as the store keeps it, checked against the config and the task."""
    raw = {
        "data": dict(task.data),
        "predictions": [
            {
                "result": result,
                "model_version": prediction.model_version,
                "score": prediction.score,
            }
        ],
    }
    (parsed,) = parse_tasks([raw], schema)
    return parsed.predictions[0]


def _attach_ocr(
    blobs: BlobStore,
    schema: ProjectSchema,
    project_id: int,
    tasks: Sequence[Task],
    inputs: list[dict[str, Any]],
) -> list[int]:
    """Give each image task's input the OCR of its (first) uploaded image, as stored.

    Returns:
        The ids of the tasks that have no OCR yet (they get no rectangles).
    """
    unread: list[int] = []
    for task, item in zip(tasks, inputs, strict=True):
        for image_id in task_image_ids(task.data, schema, project_id):
            try:
                with blobs.open(ocr_key(project_id, image_id)) as stream:
                    item["ocr"] = json.load(stream)
                break
            except NotFoundError:
                continue
        else:
            unread.append(int(task.id or 0))
    return unread


def _count(store: Store, project_id: int) -> int:
    return sum(1 for _ in store.iter_tasks(project_id, TaskQuery(has_completions=False)))


def _tasks(store: Store, project_id: int, task_ids: Sequence[int] | None) -> Iterator[Task]:
    if task_ids is None:
        yield from store.iter_tasks(project_id, TaskQuery(has_completions=False))
        return
    for task_id in task_ids:
        yield store.get_task(project_id, int(task_id))


def _batches(tasks: Iterator[Task], size: int) -> Iterator[list[Task]]:
    batch: list[Task] = []
    for task in tasks:
        batch.append(task)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


if __name__ == "__main__":
    main(preannotate)
