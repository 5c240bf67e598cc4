"""A project's custom NER training script: upload, read back, delete, and pin one to a run.

Off unless the lab allows it (``ANNOTRAIN_ALLOW_CUSTOM_SCRIPTS``): uploads are then
refused with :class:`~annotrain.domain.errors.CustomScriptsDisabledError`, and so is
starting a training of a project that has one. Uploading and deleting take the
project's Owner (or an admin); reading Owners and Managers, who start trainings.

The script lies in the blob store at :func:`script_key`. A training copies it to
the run's own folder (:func:`pin_to_run`), so a later upload never changes what a
queued run executes. What the job does with it is in ``batch_jobs/custom_script.py``
and docs/jobs.md.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

from annotrain.domain.errors import CustomScriptsDisabledError, InvalidRequestError, NotFoundError
from annotrain.domain.tasks import Role
from annotrain.ports import BlobStore, ProjectStore
from annotrain.services.access import MANAGERS, Principal, authorize

OWNERS = frozenset({Role.OWNER})
SCRIPT_NAME = "training-script.py"
CONTENT_TYPE = "text/x-python"


@dataclass(frozen=True, slots=True)
class TrainingScript:
    """A stored script.

    Attributes:
        source: Its text (UTF-8).
        sha256: The digest of its bytes (what a run records it by).
        size: Bytes.
    """

    source: str
    sha256: str
    size: int


def script_key(project_id: int) -> str:
    """Where a project's script lies in the blob store."""
    return f"projects/{project_id}/{SCRIPT_NAME}"


def run_script_key(run_id: str) -> str:
    """Where a run's pinned copy of the script lies."""
    return f"runs/{run_id}/{SCRIPT_NAME}"


def check_script(content: bytes, *, max_bytes: int) -> TrainingScript:
    """The script if it can be run: not empty, within the limit, UTF-8, valid Python.

    Compiling only parses it; nothing of it runs here.

    Raises:
        InvalidRequestError: On ``file``, saying what to fix.
    """
    if not content.strip():
        raise InvalidRequestError("file", "the script is empty: upload a Python file")
    if len(content) > max_bytes:
        raise InvalidRequestError(
            "file", f"the script is {len(content)} bytes; the limit is {max_bytes} bytes"
        )
    try:
        source = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError("file", f"the script is not UTF-8 text ({exc})") from exc
    try:
        compile(source, SCRIPT_NAME, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        where = f"line {exc.lineno}: " if isinstance(exc, SyntaxError) and exc.lineno else ""
        raise InvalidRequestError("file", f"the script is not valid Python: {where}{exc}") from exc
    return TrainingScript(source, hashlib.sha256(content).hexdigest(), len(content))


def put_training_script(
    store: ProjectStore,
    blobs: BlobStore,
    principal: Principal,
    project_id: int,
    content: bytes,
    *,
    allowed: bool,
    max_bytes: int,
) -> TrainingScript:
    """Store (or replace) a project's training script (Owner, admin), checked first.

    Raises:
        CustomScriptsDisabledError: The lab does not allow custom scripts.
        InvalidRequestError: The script cannot be run (see :func:`check_script`).
    """
    authorize(store, principal, project_id, OWNERS, "uploading a training script")
    if not allowed:
        raise CustomScriptsDisabledError("uploading a training script")
    script = check_script(content, max_bytes=max_bytes)
    blobs.put(script_key(project_id), io.BytesIO(content), content_type=CONTENT_TYPE)
    return script


def read_training_script(
    store: ProjectStore, blobs: BlobStore, principal: Principal, project_id: int
) -> TrainingScript:
    """A project's training script (Owner, Manager, admin); NotFoundError when it has none."""
    authorize(store, principal, project_id, MANAGERS, "reading the training script")
    script = find_training_script(blobs, project_id)
    if script is None:
        raise NotFoundError("training script of project", project_id)
    return script


def delete_training_script(
    store: ProjectStore, blobs: BlobStore, principal: Principal, project_id: int
) -> None:
    """Delete a project's training script (Owner, admin); trainings go back to the default."""
    authorize(store, principal, project_id, OWNERS, "deleting the training script")
    blobs.delete(script_key(project_id))


def find_training_script(blobs: BlobStore, project_id: int) -> TrainingScript | None:
    """The project's script, or None."""
    try:
        with blobs.open(script_key(project_id)) as stream:
            content = stream.read()
    except NotFoundError:
        return None
    return TrainingScript(content.decode("utf-8"), hashlib.sha256(content).hexdigest(),
                          len(content))  # fmt: skip


def pin_to_run(
    blobs: BlobStore, project_id: int, run_id: str, *, allowed: bool, model_names: list[str]
) -> dict[str, Any] | None:
    """Copy the project's script to the run's folder; what the run records of it.

    Returns:
        None when the project has no script; else ``{"key", "sha256", "models"}``.

    Raises:
        CustomScriptsDisabledError: The project has a script and the lab does not
            allow custom scripts (delete the script, or ask an admin).
    """
    script = find_training_script(blobs, project_id)
    if script is None:
        return None
    if not allowed:
        raise CustomScriptsDisabledError(
            "starting a training of a project with a training script (or delete it: "
            f"DELETE /api/v1/projects/{project_id}/training-script)"
        )
    key = run_script_key(run_id)
    blobs.put(key, io.BytesIO(script.source.encode("utf-8")), content_type=CONTENT_TYPE)
    return {"key": key, "sha256": script.sha256, "models": model_names}
