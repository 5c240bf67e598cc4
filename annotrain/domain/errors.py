"""Errors the domain raises: each carries what a person needs to fix the input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class AnnotrainError(Exception):
    """Base of every error annotrain raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a labeling config.

    Attributes:
        tag: The tag the problem is on, as written in the config (``"Labels"``).
        attribute: The attribute at fault, or None when the tag as a whole is.
        message: What is wrong.
        fix: What to change to make it right.
        line: 1-based line of the tag in the XML, when known.
        name: The tag's ``name`` attribute, when it has one.
    """

    tag: str
    attribute: str | None
    message: str
    fix: str
    line: int | None = None
    name: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        who = f'<{self.tag} name="{self.name}">' if self.name else f"<{self.tag}>"
        attr = f" attribute {self.attribute!r}" if self.attribute else ""
        return f"{where}{who}{attr}: {self.message}. Fix: {self.fix}"


class LabelingConfigError(AnnotrainError):
    """A labeling config that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """One reason a batch of tasks was refused.

    Attributes:
        task_index: 0-based position of the task in the batch.
        reason: What is wrong and how to fix it.
        result_id: The result item at fault, when the problem is in one.
        source: What holds it: ``completion 17``, ``draft #0``, ``prediction #1 (model 2)``.
    """

    task_index: int
    reason: str
    result_id: str | None = None
    source: str | None = None

    def __str__(self) -> str:
        where = f"task {self.task_index}"
        if self.source is not None:
            where += f", {self.source}"
        if self.result_id is not None:
            where += f", result {self.result_id}"
        return f"{where}: {self.reason}"


class TaskImportError(AnnotrainError):
    """A batch of tasks that was refused whole; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[ImportProblem]) -> None:
        self.problems = tuple(problems)
        shown = "; ".join(str(p) for p in self.problems[:20])
        more = len(self.problems) - 20
        super().__init__(shown + (f"; and {more} more" if more > 0 else ""))


@dataclass(frozen=True, slots=True)
class FileProblem:
    """One reason a file was refused.

    Attributes:
        file: The file's name as uploaded (or the upload id).
        reason: What is wrong and how to fix it.
        line: 1-based line of the file where the problem is, when it is in one.
    """

    file: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file!r}" + (f", line {self.line}" if self.line is not None else "")
        return f"{where}: {self.reason}"


class FileImportError(AnnotrainError):
    """Files that were refused whole; ``problems`` lists every reason (HTTP 422)."""

    def __init__(self, problems: Sequence[FileProblem]) -> None:
        self.problems = tuple(problems)
        shown = "; ".join(str(p) for p in self.problems[:20])
        more = len(self.problems) - 20
        super().__init__(shown + (f"; and {more} more" if more > 0 else ""))


class InvalidRequestError(AnnotrainError):
    """A parameter out of range or inconsistent with the project; names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class NotFoundError(AnnotrainError):
    """What was asked for does not exist; names what and which."""

    def __init__(self, what: str, key: object) -> None:
        self.what = what
        self.key = key
        super().__init__(f"{what} {key!r} does not exist")


class AlreadyExistsError(AnnotrainError):
    """Something with that name or id exists already."""

    def __init__(self, what: str, key: object) -> None:
        self.what = what
        self.key = key
        super().__init__(f"{what} {key!r} already exists")


class ConflictError(AnnotrainError):
    """An update carried a stale revision: someone else changed it first.

    Read it again, apply the change to what is stored now, and retry.
    """

    def __init__(self, what: str, key: object, expected: int, actual: int | None) -> None:
        self.what = what
        self.key = key
        self.expected = expected
        self.actual = actual
        now = "it was deleted" if actual is None else f"it is at revision {actual}"
        super().__init__(
            f"{what} {key!r} changed since it was read (read at revision {expected}, {now}); "
            "read it again and retry"
        )


class StoreUnavailableError(AnnotrainError):
    """Storage is busy or out of capacity after every retry: nothing is wrong with the
    request, try again later (HTTP 503)."""


class PermissionDeniedError(AnnotrainError):
    """The caller is known but their role does not allow this (HTTP 403)."""

    def __init__(self, action: str, allowed: str) -> None:
        self.action = action
        self.allowed = allowed
        super().__init__(f"{action} is for {allowed}")


class JobRunnerUnavailableError(AnnotrainError):
    """No job runner serves this app, so jobs cannot be started or stopped (HTTP 503)."""

    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(
            f"cannot {action}: no job runner is configured for this server "
            "(`annotrain serve` starts one; an app made without one cannot run jobs)"
        )


class PresignUnavailableError(AnnotrainError):
    """The lab's blob store cannot give presigned URLs (a folder on a single node: HTTP 501).

    The message names the store and what to do instead.
    """

    def __init__(self, action: str, instead: str) -> None:
        self.action = action
        self.instead = instead
        super().__init__(
            f"cannot {action}: this lab keeps its files in a folder (single node), which "
            f"has no presigned URLs; {instead}"
        )


class ImageCheckUnavailableError(AnnotrainError):
    """Images cannot be checked here because Pillow is not installed (HTTP 503)."""

    def __init__(self) -> None:
        super().__init__(
            "cannot check uploaded images: Pillow is not installed where the API runs; "
            "install it (pip install pillow, or annotrain[ml]) and retry"
        )


class JobSubmitError(AnnotrainError):
    """The job runner refused or failed to take a job; the run was marked failed (HTTP 503)."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(
            f"run {run_id!r} could not be submitted ({reason}); it is marked failed: "
            "start it again once the job runner answers"
        )


class RunStateError(AnnotrainError):
    """A run is not in a status that allows the change asked for (HTTP 409)."""

    def __init__(self, run_id: str, status: str, action: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(f"run {run_id!r} is {status} already: {action} is not possible")


class MeteringRefusedError(AnnotrainError):
    """AWS Marketplace Metering did not take a usage record.

    Attributes:
        retry: True when the same request may succeed later (throttled, AWS or the
            network failing); False when it never will (too old, not entitled…).
    """

    def __init__(self, message: str, *, retry: bool) -> None:
        self.retry = retry
        super().__init__(message)


class CustomScriptsDisabledError(AnnotrainError):
    """The lab does not run custom training scripts (an admin has not turned them on)."""

    def __init__(self, action: str) -> None:
        super().__init__(
            f"{action}: custom training scripts are off in this lab; an admin turns them on "
            "with ANNOTRAIN_ALLOW_CUSTOM_SCRIPTS=true (in the API's and the jobs' environment)"
        )


class SingleNodeOnlyError(AnnotrainError):
    """What only a single-node lab does, asked of a serverless one (HTTP 501).

    The message says what the serverless lab offers instead, and where it is documented.
    """

    def __init__(self, action: str, instead: str) -> None:
        self.action = action
        self.instead = instead
        super().__init__(f"cannot {action}: a serverless lab does not; {instead}")


class BackupInProgressError(AnnotrainError):
    """A backup of this lab is already running (HTTP 409)."""

    def __init__(self, which: str) -> None:
        self.which = which
        super().__init__(f"{which} is still running; wait for it to finish")


class BackupRefusedError(AnnotrainError):
    """A backup that cannot be restored: partial, damaged or changed.

    Attributes:
        path: The file of the backup that fails (its manifest when the backup is partial).
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: {reason}; nothing was restored")


class LabBusyError(AnnotrainError):
    """The lab's data folder is in use in a way that forbids what was asked."""
