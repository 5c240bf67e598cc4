"""Text models: NER, assertion status and classification on a packaged encoder.

The interface the train and pre-annotation jobs call::

    models = train_snapshot(snapshot, out_dir, device="cpu", on_progress=…, should_stop=…)
    predictor = load_models([m.directory for m in models])
    predictions = predictor.predict([task.data for task in tasks])

Modules: :mod:`.data` (examples → inputs), :mod:`.model` (building, forward),
:mod:`.train` (the loop, `train_snapshot`), :mod:`.evaluate` (scores, plots),
:mod:`.artifacts` (folders), :mod:`.predict` (pre-annotation). Importing any of
them imports neither torch nor transformers; that happens on first use.
"""

from batch_jobs.text.errors import (
    GpuUnavailableError,
    NotEnoughDataError,
    OutOfMemoryError,
    TrainingCancelledError,
)
from batch_jobs.text.predict import TaskPrediction, TextPredictor, load_models
from batch_jobs.text.train import TrainedModel, TrainingProgress, TrainOptions, train_snapshot

__all__ = [
    "GpuUnavailableError",
    "NotEnoughDataError",
    "OutOfMemoryError",
    "TaskPrediction",
    "TextPredictor",
    "TrainOptions",
    "TrainedModel",
    "TrainingCancelledError",
    "TrainingProgress",
    "load_models",
    "train_snapshot",
]
