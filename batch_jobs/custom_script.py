"""A project's custom NER training script, run by the train job as a separate process.

The interface (docs/jobs.md has it for script authors)::

    python script.py --input IN --output OUT

- ``IN/snapshot.json``: the run's dataset snapshot, as the job reads it.
- ``IN/params.json``: ``{"model": {"name", "kind", "labels"}, "training": {...},
  "base_model", "language", "use_gpu", "run_id"}``.
- The script writes ``OUT/model/`` (the model folder, not empty) and
  ``OUT/metrics.json``: ``{"per_label": {label: {"precision", "recall", "f1",
  "support"?}}, "micro": {"precision", "recall", "f1"}, "macro": {...}}``, scores
  between 0 and 1. Exit code 0 means it succeeded.

What the process gets: a working directory holding only the script, ``IN`` and
``OUT``; an environment of ``PATH``, ``HOME`` (the working directory), locale and
``CUDA_VISIBLE_DEVICES`` only (no ``ANNOTRAIN_*``, no ``AWS_*``: no store or cloud
credentials); the job's Python in isolated mode (``-I``); a timeout. Its stdout
and stderr go line by line into the run's log; a cancel or the timeout kills its
process group. This is a process boundary, not a sandbox: the script runs as the
job's user, so an admin turns scripts on only for Owners they trust.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from annotrain.domain.errors import AnnotrainError
from annotrain.domain.snapshot import TrainingSnapshot
from annotrain.domain.training_plan import ModelSpec

#: Environment variables passed through to the script; nothing else is.
PASSED_VARIABLES = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES")
#: Stderr lines quoted in a failed run's reason.
STDERR_TAIL_LINES = 20
_SCORES = ("precision", "recall", "f1")


class CustomScriptError(AnnotrainError):
    """The script failed, ran too long, or wrote output that is not the interface's."""


@dataclass(frozen=True)
class ScriptModel:
    """The model a script trained, as the train job registers it (a ``TrainedModel``)."""

    spec: ModelSpec
    directory: Path
    metrics: Mapping[str, Any]
    history: Sequence[Mapping[str, Any]] = ()
    plots: Sequence[Path] = field(default_factory=tuple)


def script_environment(environ: Mapping[str, str], work_dir: Path) -> dict[str, str]:
    """The script's environment: a few harmless variables of the job's, nothing more."""
    passed = {name: environ[name] for name in PASSED_VARIABLES if name in environ}
    return {**passed, "HOME": str(work_dir), "PYTHONUNBUFFERED": "1"}


def run_training_script(
    script: Path,
    snapshot: TrainingSnapshot,
    spec: ModelSpec,
    work_dir: Path,
    *,
    timeout_s: float,
    log: logging.Logger,
    should_stop: Callable[[], bool],
    environ: Mapping[str, str] | None = None,
) -> ScriptModel:
    """Run the script for one NER model and check what it wrote.

    Args:
        script: The run's copy of the script.
        snapshot: The run's snapshot.
        spec: The NER model it trains.
        work_dir: An empty folder: the script's working directory.
        timeout_s: Seconds before the script is killed.
        log: The run's log: the script's output goes there.
        should_stop: True once the run was cancelled: the script is killed.
        environ: The job's environment (``os.environ``), filtered for the script.

    Raises:
        CustomScriptError: It failed (with its stderr tail), timed out, or its output
            does not follow the interface.
    """
    in_dir, out_dir = work_dir / "input", work_dir / "output"
    in_dir.mkdir(parents=True)
    out_dir.mkdir()
    (work_dir / "script.py").write_bytes(script.read_bytes())
    (in_dir / "snapshot.json").write_bytes(snapshot.to_bytes())
    params = {
        "model": {"name": spec.name, "kind": spec.kind.value, "labels": list(spec.labels)},
        "training": snapshot.params.to_json(),
        "base_model": snapshot.base_model,
        "language": snapshot.language,
        "use_gpu": snapshot.use_gpu,
        "run_id": snapshot.run_id,
    }
    (in_dir / "params.json").write_text(json.dumps(params, indent=2), encoding="utf-8")
    command = [sys.executable, "-I", "script.py", "--input", "input", "--output", "output"]
    env = script_environment(os.environ if environ is None else environ, work_dir)
    log.info("custom script for %s: %s (timeout %ss)", spec.name, " ".join(command), timeout_s)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        command,
        cwd=work_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: killed whole, children too
    )
    assert process.stdout is not None
    assert process.stderr is not None
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    readers = [
        threading.Thread(target=_stream, args=(process.stdout, log, "out", None), daemon=True),
        threading.Thread(target=_stream, args=(process.stderr, log, "err", tail), daemon=True),
    ]
    for reader in readers:
        reader.start()
    ended = _wait(process, timeout_s, should_stop)
    for reader in readers:
        reader.join(timeout=10)
    if ended == "stopped":
        raise CustomScriptError("the custom training script was stopped: the run was cancelled")
    if ended == "timeout":
        raise CustomScriptError(
            f"the custom training script ran longer than {timeout_s:g} s and was killed"
            + _tail_text(tail)
        )
    if process.returncode != 0:
        raise CustomScriptError(
            f"the custom training script exited with code {process.returncode}" + _tail_text(tail)
        )
    return ScriptModel(spec, _checked_model(out_dir, spec), _checked_metrics(out_dir, spec))


def _stream(pipe: IO[bytes], log: logging.Logger, name: str, tail: deque[str] | None) -> None:
    with pipe:
        for raw in pipe:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            log.info("script %s: %s", name, line)
            if tail is not None:
                tail.append(line)


def _wait(
    process: subprocess.Popen[bytes], timeout_s: float, should_stop: Callable[[], bool]
) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            process.wait(timeout=min(1.0, max(deadline - time.monotonic(), 0.01)))
        except subprocess.TimeoutExpired:
            if should_stop():
                _kill(process)
                return "stopped"
            if time.monotonic() >= deadline:
                _kill(process)
                return "timeout"
            continue
        return "exited"


def _kill(process: subprocess.Popen[bytes]) -> None:
    # It may have ended on its own between the check and the kill.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail_text(tail: deque[str]) -> str:
    return (": " + "\n".join(tail)) if tail else " (it wrote nothing to stderr)"


def _checked_model(out_dir: Path, spec: ModelSpec) -> Path:
    model = out_dir / "model"
    if not model.is_dir() or not any(model.iterdir()):
        raise CustomScriptError(
            "the custom training script wrote no model: it must write the model folder "
            "OUT/model (not empty; see docs/jobs.md)"
        )
    meta = model / "annotrain.json"
    if not meta.exists():
        # What the registry and pre-annotation read of every model folder.
        meta.write_text(json.dumps({"kind": spec.kind.value, "labels": list(spec.labels),
                                    "custom_script": True}), encoding="utf-8")  # fmt: skip
    return model


def _checked_metrics(out_dir: Path, spec: ModelSpec) -> dict[str, Any]:
    path = out_dir / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CustomScriptError(
            "the custom training script wrote no OUT/metrics.json (see docs/jobs.md)"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CustomScriptError(f"metrics.json is not JSON: {exc}") from exc
    if not isinstance(metrics, dict):
        raise CustomScriptError("metrics.json must be an object with per_label, micro, macro")
    for name in ("micro", "macro"):
        _check_scores(metrics.get(name), f"metrics.json {name}")
    per_label = metrics.get("per_label")
    if not isinstance(per_label, dict):
        raise CustomScriptError("metrics.json per_label must be an object: label → scores")
    for label, scores in per_label.items():
        _check_scores(scores, f"metrics.json per_label[{label!r}]")
        support = scores.get("support")
        if support is not None and (not isinstance(support, int) or support < 0):
            raise CustomScriptError(f"metrics.json per_label[{label!r}].support must be a count")
    unknown = sorted(set(per_label) - set(spec.labels))
    if unknown:
        raise CustomScriptError(
            f"metrics.json per_label names labels the model does not have: {unknown}; "
            f"its labels: {list(spec.labels)}"
        )
    return metrics


def _check_scores(value: object, where: str) -> None:
    if not isinstance(value, dict):
        raise CustomScriptError(f"{where} must be an object with precision, recall, f1")
    for name in _SCORES:
        score = value.get(name)
        ok = isinstance(score, int | float) and not isinstance(score, bool)
        if not ok or not math.isfinite(float(score)) or not 0 <= float(score) <= 1:  # type: ignore[arg-type]
            raise CustomScriptError(f"{where}.{name} must be a number from 0 to 1 (got {score!r})")
