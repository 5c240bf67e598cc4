"""Why a Visual NER training cannot go on: each message is a run's failure reason."""

from __future__ import annotations

from collections.abc import Sequence

from batch_jobs.text.errors import NotEnoughDataError

#: How many task ids a message names before it says "and N more".
SHOWN_TASKS = 20


def _tasks(task_ids: Sequence[str]) -> str:
    shown = ", ".join(task_ids[:SHOWN_TASKS])
    more = len(task_ids) - SHOWN_TASKS
    return shown + (f" and {more} more" if more > 0 else "")


class OcrMissingError(NotEnoughDataError):
    """Image tasks whose image has not been OCR'd: the model has no words to read."""

    def __init__(self, model: str, task_ids: Sequence[str]) -> None:
        self.task_ids = list(task_ids)
        super().__init__(
            model,
            f"{len(task_ids)} task(s) have no OCR of their image yet (task ids "
            f"{_tasks(self.task_ids)}): run OCR first (POST /api/v1/projects/{{id}}/ocr), "
            "wait for it to succeed, then start the training again",
        )


class PoorBoxesError(NotEnoughDataError):
    """Completions whose rectangles hold no OCR word at all (boxes drawn beside the text)."""

    def __init__(self, model: str, task_ids: Sequence[str]) -> None:
        self.task_ids = list(task_ids)
        super().__init__(
            model,
            f"completions with no words inside — poor boxes: in {len(task_ids)} task(s) "
            f"(task ids {_tasks(self.task_ids)}) no rectangle holds an OCR word (a word "
            "belongs to a rectangle when most of its box lies inside). Redraw those "
            "rectangles around the words they label, or check that the project's language "
            "matches the documents so that OCR finds their words",
        )
