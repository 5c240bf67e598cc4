"""The JobRunner port as a supervised pool of local processes: the single-node mode.

Each job is ``python -m batch_jobs.<kind> --run-id <id>`` in its own session (so a
cancel reaches the whole process group), writing stdout and stderr to
``<log_dir>/<run_id>.log``. A supervisor thread starts queued jobs as slots free
up, reaps the ones that end and settles their runs; it is the only thread that
starts or reaps processes, so a run's start is always recorded before its end.

What each writer records:

- the job (``batch_jobs.runtime``): running, heartbeats, progress, its own result;
- the supervisor: running (with ``job_ref`` ``<host>:<pid>``) and the server record
  at start; at exit, the result the job did not report (exit code 0: succeeded;
  otherwise failed with the exit code or signal), the end of the server record and
  the usage; a job whose heartbeat stopped is killed and failed;
- ``cancel``: cancelled, then SIGTERM to the group and SIGKILL after a grace period;
- ``recover`` (on start): runs left ``running`` by a previous server are failed or
  queued again, runs it had queued are queued again, stale server records go.

One runner per store: a second runner on the same database would take the first
one's jobs for leftovers of a crash.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from annotrain.domain.errors import AlreadyExistsError, InvalidRequestError, NotFoundError
from annotrain.domain.records import JobKind, Run, RunStatus, Server
from annotrain.ports import Clock, JobSpec, JobStatus
from annotrain.services.run_lifecycle import (
    RunRecords,
    check_submittable,
    finished,
    mark_finished,
    mark_started,
    record_usage,
    requeued,
    update_run_with,
)

_LOG = logging.getLogger(__name__)

DEFAULT_LIMITS: Mapping[JobKind, int] = {JobKind.TRAIN: 1, JobKind.PREANNOTATE: 1, JobKind.OCR: 1}
CANCELLED_REASON = "cancelled by user"
RESTARTED_REASON = "interrupted: the server restarted while it ran"
STOPPED_REASON = "interrupted: the server stopped while it ran"
# job_ref of a run this runner has queued but not started: "<host>:queued".
QUEUED_SUFFIX = ":queued"
# Run ids name log files: no separators, no leading dot.
_SAFE_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

CommandFactory = Callable[[JobSpec], Sequence[str]]


def job_module_command(spec: JobSpec) -> list[str]:
    """The default command: the job's entry module under this interpreter."""
    return [sys.executable, "-m", f"batch_jobs.{spec.kind.value}", "--run-id", spec.run_id]


def describe_exit(returncode: int) -> str:
    """How a process ended, for a person: ``exited with code 3``, ``killed by signal SIGKILL``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"{-returncode}"
        return f"killed by signal {name}"
    return f"exited with code {returncode}"


@dataclass(eq=False)
class _Job:
    """A started process and what the supervisor decided about it."""

    spec: JobSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: datetime
    # Set when the runner itself stops the job: the status and reason it ends with.
    stop: tuple[RunStatus, str] | None = None
    # time.monotonic() after which a job sent SIGTERM gets SIGKILL.
    kill_at: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        # poll() reaps; a reaped pid may be reused, so only signal while this is True.
        return self.process.poll() is None


class LocalJobRunner:
    """Runs jobs as local processes, a few of each kind at a time, and watches them.

    Args:
        store: Where runs, server records and usage are kept.
        log_dir: Where each job's output goes (``<run_id>.log``).
        limits: How many jobs of each kind run at once (1 each by default; a kind
            left out gets 1). The rest wait, first in first out. A callable is asked
            at every dispatch round: ``annotrain serve`` passes the license's server
            limits (:func:`annotrain.services.licenses.runner_limits`), so a PAYG
            license's N parallel servers run N at once and a license change applies
            without a restart.
        command: The command line of a job; by default
            ``[sys.executable, "-m", "batch_jobs.<kind>", "--run-id", <run_id>]``.
        env: Variables added to the jobs' environment (``ANNOTRAIN_DB``…);
            ``ANNOTRAIN_RUN_ID`` is always set, and CPU jobs get no GPU
            (``CUDA_VISIBLE_DEVICES`` empty).
        heartbeat_timeout: Seconds without a heartbeat after which a running job is
            killed and failed; None to trust a live process however quiet.
        poll_interval: Seconds between two looks at the processes.
        grace_period: Seconds a cancelled job has between SIGTERM and SIGKILL.
        requeue: Whether runs interrupted by a server stop or crash are queued
            again (True) or failed (False).
        clock: The time; the system clock by default.
        host: This machine's name in job handles; the host name by default.
    """

    def __init__(
        self,
        store: RunRecords,
        *,
        log_dir: Path,
        limits: Mapping[JobKind, int] | Callable[[], Mapping[JobKind, int]] | None = None,
        command: CommandFactory | None = None,
        env: Mapping[str, str] | None = None,
        heartbeat_timeout: float | None = None,
        poll_interval: float = 0.5,
        grace_period: float = 10.0,
        requeue: bool = False,
        clock: Clock | None = None,
        host: str | None = None,
    ) -> None:
        self._limits_source = limits if callable(limits) else None
        fixed = dict(DEFAULT_LIMITS if limits is None or callable(limits) else limits)
        for kind, limit in fixed.items():
            if limit < 1:
                raise InvalidRequestError("limits", f"{kind}: at least 1 job must be able to run")
        if heartbeat_timeout is not None and heartbeat_timeout <= 0:
            raise InvalidRequestError("heartbeat_timeout", "must be positive or None")
        self._store = store
        self._log_dir = Path(log_dir)
        self._limits = {kind: fixed.get(kind, 1) for kind in JobKind}
        self._command = command or job_module_command
        self._env = dict(env or {})
        self._heartbeat_timeout = heartbeat_timeout
        self._poll_interval = poll_interval
        self._grace_period = grace_period
        self._requeue = requeue
        self._clock = clock
        self._host = host
        self._lock = threading.Lock()
        self._queues: dict[JobKind, deque[JobSpec]] = {kind: deque() for kind in JobKind}
        self._jobs: dict[str, _Job] = {}
        self._unsettled: list[_Job] = []  # ended, not yet recorded (the supervisor's own)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the port ----------------------------------------------------------------

    def submit(self, spec: JobSpec) -> str:
        """Queue a job for a stored, queued run; it starts when its kind has a free slot.

        Returns:
            The job's handle while it waits, ``<host>:queued`` (``<host>:<pid>`` once
            it runs); it is stored as the run's ``job_ref``.

        Raises:
            NotFoundError: The run does not exist.
            InvalidRequestError: The run is not queued, is of another kind, or its id
                cannot name a log file.
            AlreadyExistsError: The run was submitted already.
        """
        if not _SAFE_RUN_ID.fullmatch(spec.run_id):
            raise InvalidRequestError(
                "run_id", f"{spec.run_id!r}: use letters, digits and -_. (128 at most)"
            )
        run = self._store.get_run(spec.run_id)
        check_submittable(run, spec)
        handle = self._queued_ref()

        def take(stored: Run) -> Run | None:
            if stored.status is RunStatus.QUEUED and stored.job_ref is None:
                return replace(stored, job_ref=handle)
            return None

        _, changed = update_run_with(self._store, spec.run_id, take)
        if not changed:
            raise AlreadyExistsError("job", spec.run_id)
        with self._lock:
            self._queues[spec.kind].append(spec)
        self._wake.set()
        return handle

    def cancel(self, run_id: str) -> None:
        """Cancel a job: a queued one leaves the queue, a running one is stopped.

        The run is marked cancelled at once; a running process gets SIGTERM (to its
        whole process group) and SIGKILL after the grace period. Cancelling a
        finished run does nothing.

        Raises:
            NotFoundError: The run does not exist.
        """
        self._store.get_run(run_id)
        with self._lock:
            self._remove_queued(run_id)
            job = self._jobs.get(run_id)
        _, changed = update_run_with(
            self._store,
            run_id,
            lambda r: finished(r, RunStatus.CANCELLED, at=self._now(), reason=CANCELLED_REASON),
        )
        if not changed or job is None:
            return
        with self._lock:
            if job.alive() and job.stop is None:
                job.stop = (RunStatus.CANCELLED, CANCELLED_REASON)
                _signal_group(job.pid, signal.SIGTERM)
                job.kill_at = time.monotonic() + self._grace_period
        self._wake.set()

    def status(self, run_id: str) -> JobStatus:
        """Where a job stands: the store's final status, else this runner's process table.

        Raises:
            NotFoundError: The run does not exist or was never submitted.
        """
        run = self._store.get_run(run_id)
        with self._lock:
            job = self._jobs.get(run_id)
            queued = any(s.run_id == run_id for s in self._queues[run.kind])
        if job is None and not queued and run.job_ref is None:
            raise NotFoundError("job", run_id)
        if run.status.is_final:
            return JobStatus(run.status, run.job_ref or "", run.failure_reason)
        if job is not None:
            return JobStatus(RunStatus.RUNNING, self._process_ref(job.pid))
        if queued:
            return JobStatus(RunStatus.QUEUED, run.job_ref or self._queued_ref())
        return JobStatus(run.status, run.job_ref or "", run.failure_reason)

    # --- lifecycle ---------------------------------------------------------------

    def start(self, *, recover: bool = True) -> None:
        """Recover what a previous server left behind, then start supervising.

        Args:
            recover: False for a runner that serves only the jobs it is given beside
                a server's runner on the same store (``annotrain train --wait``): it
                must not take the server's runs for a crash's leftovers.
        """
        if self._thread is not None:
            return
        self._stopping.clear()
        if recover:
            self.recover()
        self._thread = threading.Thread(
            target=self._supervise, name="annotrain-local-runner", daemon=True
        )
        self._thread.start()

    def shutdown(self) -> None:
        """Stop supervising; running jobs are stopped and their runs failed (or queued again).

        Jobs still waiting stay queued in the store, and the next start queues them
        again.
        """
        thread, self._thread = self._thread, None
        self._stopping.set()
        self._wake.set()
        if thread is not None:
            thread.join()
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
            for queue in self._queues.values():
                queue.clear()
            stopped = {job.spec.run_id for job in jobs if job.stop is None and job.alive()}
            for job in jobs:
                if job.spec.run_id in stopped:
                    _signal_group(job.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._grace_period
        for job in jobs:
            try:
                job.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(job.pid, signal.SIGKILL)
                job.process.wait()
        unsettled, self._unsettled = self._unsettled, []
        for job in [*unsettled, *jobs]:
            if job.spec.run_id in stopped:
                self._interrupt(job.spec.run_id, STOPPED_REASON, ended=self._now())
            else:
                self._settle(job)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()

    def recover(self) -> list[Run]:
        """Settle what a previous server left: no run stays ``running`` without a process.

        Runs the store has as running but whose process this runner does not hold are
        failed ("interrupted: the server restarted while it ran"), or queued again
        with ``requeue``; a process of theirs still alive on this host is killed
        first, since nothing could watch it. Runs a previous server had queued
        (``job_ref`` ending in ``:queued``) are queued again in their order, and
        server records of jobs that do not run here are removed.

        Returns:
            The runs it changed, as stored afterwards.

        Raises:
            RuntimeError: The runner is supervising already: a job it is starting
                could be taken for a leftover.
        """
        if self._thread is not None:
            raise RuntimeError("recover() runs before start(), which calls it")
        changed: list[Run] = []
        with self._lock:
            ours = set(self._jobs) | {s.run_id for q in self._queues.values() for s in q}
        for run in self._all_runs(RunStatus.RUNNING):
            if run.id in ours:
                continue
            self._kill_orphan(run)
            # Its process died unseen: bill it to its last sign of life, no further.
            after = self._interrupt(run.id, RESTARTED_REASON, ended=run.heartbeat_at)
            if after is not None:
                changed.append(after)
        for run in self._all_runs(RunStatus.QUEUED):
            if run.id in ours or not (run.job_ref or "").endswith(QUEUED_SUFFIX):
                continue
            with self._lock:
                self._queues[run.kind].append(JobSpec(run.kind, run.id, run.use_gpu))
            changed.append(run)
        with self._lock:
            live = set(self._jobs)
        for server in self._all_servers():
            if server.run_id not in live:
                self._store.remove_server(server.run_id)
        self._wake.set()
        return changed

    # --- the supervisor ------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._reap()
                self._enforce_deadlines()
                self._check_heartbeats()
                self._dispatch()
            except Exception:  # noqa: BLE001 - the supervisor must outlive a store hiccup
                _LOG.exception("local job runner: supervision round failed; retrying")
            self._wake.wait(self._poll_interval)

    def _reap(self) -> None:
        with self._lock:
            ended = [job for job in self._jobs.values() if not job.alive()]
            for job in ended:
                del self._jobs[job.spec.run_id]
        self._unsettled.extend(ended)
        while self._unsettled:
            # Kept until settled: a store that fails now is tried again next round.
            self._settle(self._unsettled[0])
            self._unsettled.pop(0)
        if ended:
            self._wake.set()  # slots are free: dispatch without waiting a round

    def _settle(self, job: _Job) -> None:
        returncode = job.process.returncode
        if job.stop is not None:
            status, reason = job.stop
        elif returncode == 0:
            status, reason = RunStatus.SUCCEEDED, None
        else:
            status, reason = RunStatus.FAILED, f"{describe_exit(returncode)} (log: {job.log_path})"
        run = mark_finished(self._store, job.spec.run_id, status, at=self._now(), reason=reason)
        _LOG.info(
            "job %s of run %s ended: %s; run %s",
            job.spec.kind, job.spec.run_id, describe_exit(returncode), run.status,
        )  # fmt: skip

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        with self._lock:
            for job in self._jobs.values():
                if job.kill_at is not None and now >= job.kill_at and job.alive():
                    _signal_group(job.pid, signal.SIGKILL)
                    job.kill_at = None

    def _check_heartbeats(self) -> None:
        timeout = self._heartbeat_timeout
        if timeout is None:
            return
        with self._lock:
            watched = [job for job in self._jobs.values() if job.stop is None]
        for job in watched:
            run = self._store.get_run(job.spec.run_id)
            if run.status is not RunStatus.RUNNING:
                continue
            last = run.heartbeat_at or run.started_at or job.started_at
            silent = (self._now() - last).total_seconds()
            if silent <= timeout:
                continue
            reason = f"no heartbeat for {silent:.0f} s (log: {job.log_path})"

            def fail(stored: Run, why: str = reason) -> Run | None:
                return finished(stored, RunStatus.FAILED, at=self._now(), reason=why)

            _, changed = update_run_with(self._store, run.id, fail)
            if changed:
                with self._lock:
                    if job.alive():
                        job.stop = (RunStatus.FAILED, reason)
                        _signal_group(job.pid, signal.SIGKILL)

    def _current_limits(self) -> dict[JobKind, int]:
        if self._limits_source is None:
            return self._limits
        asked = self._limits_source()
        return {kind: max(1, asked.get(kind, 1)) for kind in JobKind}

    def _dispatch(self) -> None:
        started: list[_Job] = []
        refused: list[tuple[str, str]] = []
        limits = self._current_limits()  # may read the store: not under the lock
        with self._lock:
            for kind, queue in self._queues.items():
                while queue and self._running(kind) < limits[kind]:
                    spec = queue[0]
                    try:
                        run = self._store.get_run(spec.run_id)
                    except NotFoundError:
                        queue.popleft()
                        continue
                    queue.popleft()  # only now: a store error leaves it first in line
                    if run.status is not RunStatus.QUEUED:
                        continue  # cancelled (or settled elsewhere) while it waited
                    try:
                        job = self._spawn(spec)
                    except Exception as exc:  # noqa: BLE001 - the run must not stay queued
                        refused.append((spec.run_id, f"could not start the job: {exc}"))
                        continue
                    self._jobs[spec.run_id] = job
                    started.append(job)
        for job in started:
            ref = self._process_ref(job.pid)
            mark_started(self._store, job.spec.run_id, at=job.started_at, job_ref=ref, host=ref)
        for run_id, reason in refused:
            mark_finished(self._store, run_id, RunStatus.FAILED, at=self._now(), reason=reason)

    def _spawn(self, spec: JobSpec) -> _Job:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._log_dir / f"{spec.run_id}.log"
        env = {**os.environ, **self._env, "ANNOTRAIN_RUN_ID": spec.run_id}
        if not spec.use_gpu:
            env["CUDA_VISIBLE_DEVICES"] = ""
        with log_path.open("ab") as log:
            # The command comes from the composition root, never from a request.
            process = subprocess.Popen(  # noqa: S603
                list(self._command(spec)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        job = _Job(spec, process, log_path, self._now())
        if hasattr(os, "waitid"):
            threading.Thread(
                target=self._wake_on_exit, args=(process.pid,), name=f"wait-{spec.run_id}",
                daemon=True,
            ).start()  # fmt: skip
        return job

    def _wake_on_exit(self, pid: int) -> None:
        """Wake the supervisor the moment a job exits, rather than at its next round.

        WNOWAIT leaves the process to be reaped by the supervisor, under its lock, so
        no signal is ever sent to a pid that was reaped and could be reused.
        """
        with contextlib.suppress(ChildProcessError):  # reaped already
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        self._wake.set()

    def _running(self, kind: JobKind) -> int:
        return sum(1 for job in self._jobs.values() if job.spec.kind is kind)

    # --- helpers -------------------------------------------------------------------

    def _interrupt(self, run_id: str, reason: str, *, ended: datetime | None) -> Run | None:
        """Settle a running run whose process is gone: failed, or queued again.

        Args:
            run_id: Which run.
            reason: Why it failed, if it is failed.
            ended: When its process was last known alive, where its usage ends; None
                bills nothing.
        """
        run = self._store.get_run(run_id)
        if run.status.is_final:  # it reported its own end before it was stopped
            mark_finished(self._store, run_id, run.status, at=self._now(), reason=None)
            return None
        spans = [(run.started_at, ended)] if run.started_at and ended else []
        if not self._requeue:
            return mark_finished(
                self._store, run_id, RunStatus.FAILED, at=self._now(), reason=reason, spans=spans
            )
        after, changed = update_run_with(
            self._store, run_id, lambda r: requeued(r, job_ref=self._queued_ref())
        )
        self._store.remove_server(run_id)
        record_usage(self._store, run, spans)
        if not changed:
            return None
        if not self._stopping.is_set():
            with self._lock:
                self._queues[after.kind].append(JobSpec(after.kind, after.id, after.use_gpu))
        return after

    def _kill_orphan(self, run: Run) -> None:
        """Kill a job process a crashed server left running on this host, if there is one."""
        host, _, pid_text = (run.job_ref or "").rpartition(":")
        if host != self._host_name() or not pid_text.isdigit():
            return
        pid = int(pid_text)
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return  # gone, not ours, or no /proc: nothing to kill
        # The pid may have been reused: only a process serving this run is killed.
        if f"ANNOTRAIN_RUN_ID={run.id}".encode() in environ.split(b"\0"):
            _signal_group(pid, signal.SIGKILL)

    def _remove_queued(self, run_id: str) -> bool:
        for queue in self._queues.values():
            for spec in queue:
                if spec.run_id == run_id:
                    queue.remove(spec)
                    return True
        return False

    def _all_runs(self, status: RunStatus) -> list[Run]:
        # Read every page before changing any: changes move runs between listings.
        runs: list[Run] = []
        token: str | None = None
        while True:
            page = self._store.list_runs_by_status(status, token=token)
            runs.extend(page.items)
            if (token := page.next_token) is None:
                return runs

    def _all_servers(self) -> list[Server]:
        servers: list[Server] = []
        token: str | None = None
        while True:
            page = self._store.list_servers(token=token)
            servers.extend(page.items)
            if (token := page.next_token) is None:
                return servers

    def _now(self) -> datetime:
        if self._clock is None:
            from annotrain.adapters.system_clock import SystemClock

            self._clock = SystemClock()
        return self._clock.now()

    def _host_name(self) -> str:
        if self._host is None:
            self._host = socket.gethostname()
        return self._host

    def _queued_ref(self) -> str:
        return f"{self._host_name()}{QUEUED_SUFFIX}"

    def _process_ref(self, pid: int) -> str:
        return f"{self._host_name()}:{pid}"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal a job's process group (its pid: each job leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pid, sig)
