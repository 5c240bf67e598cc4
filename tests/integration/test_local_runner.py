"""LocalJobRunner: real processes (tiny ``python -c`` scripts), a real supervisor thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes import list_all

from annotrain.adapters.local_runner import (
    CANCELLED_REASON,
    RESTARTED_REASON,
    STOPPED_REASON,
    LocalJobRunner,
    describe_exit,
    job_module_command,
)
from annotrain.domain.errors import AlreadyExistsError, InvalidRequestError, NotFoundError
from annotrain.domain.records import JobKind, Run, RunStatus, Server, UsageRecord
from annotrain.ports import JobSpec

HOST = "testhost"
CREATED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
# Scripts wait on a "gate" file the test creates, so a test decides when a job ends.
WAIT_FOR_GATE = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.02)\n"


class Jobs:
    """The command factory of a test: which script each run's process runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.scripts: dict[str, str] = {}

    def script(self, run_id: str, code: str) -> None:
        self.scripts[run_id] = textwrap.dedent(code)

    def gate(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.gate"

    def open_gate(self, run_id: str) -> None:
        self.gate(run_id).touch()

    def __call__(self, spec: JobSpec) -> list[str]:
        code = self.scripts.get(spec.run_id, "import time; time.sleep(60)")
        return [sys.executable, "-c", code, str(self.gate(spec.run_id))]


@pytest.fixture
def jobs(tmp_path: Path) -> Jobs:
    return Jobs(tmp_path)


@pytest.fixture
def make_runner(
    run_store: Any, jobs: Jobs, tmp_path: Path
) -> Iterator[Callable[..., LocalJobRunner]]:
    runners: list[LocalJobRunner] = []

    def make(start: bool = True, **kwargs: Any) -> LocalJobRunner:
        options: dict[str, Any] = {
            "log_dir": tmp_path / "logs",
            "command": jobs,
            "poll_interval": 0.05,
            "grace_period": 1.0,
            "host": HOST,
        }
        options.update(kwargs)
        runner = LocalJobRunner(run_store, **options)
        runners.append(runner)
        if start:
            runner.start()
        return runner

    yield make
    for runner in runners:
        runner.shutdown()


def new_run(store: Any, run_id: str, kind: JobKind = JobKind.TRAIN, **kwargs: Any) -> Run:
    run = Run(run_id, 1, kind, RunStatus.QUEUED, "ana", CREATED, **kwargs)
    stored: Run = store.create_run(run)
    return stored


def submit(runner: LocalJobRunner, store: Any, run_id: str, **kwargs: Any) -> str:
    run = new_run(store, run_id, **kwargs)
    return runner.submit(JobSpec(run.kind, run.id, run.use_gpu))


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start


def status_of(store: Any, run_id: str) -> RunStatus:
    return store.get_run(run_id).status


def pid_of(store: Any, run_id: str) -> int:
    wait_for(lambda: status_of(store, run_id) is RunStatus.RUNNING)
    ref = store.get_run(run_id).job_ref
    host, _, pid = ref.rpartition(":")
    assert host == HOST
    return int(pid)


def process_gone(pid: int) -> bool:
    """True when no live process has this pid (zombies count as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def servers(store: Any) -> list[Server]:
    return list_all(lambda token: store.list_servers(token=token))


def all_usage(store: Any) -> list[UsageRecord]:
    since, until = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    return list_all(lambda token: store.list_usage(since=since, until=until, token=token))


# --- crashes and exits -----------------------------------------------------------


def test_job_killed_with_sigkill_mid_run_ends_failed_naming_the_signal_within_5_s(
    make_runner: Callable[..., LocalJobRunner], run_store: Any
) -> None:
    runner = make_runner()
    submit(runner, run_store, "run-1")
    pid = pid_of(run_store, "run-1")

    os.kill(pid, signal.SIGKILL)
    took = wait_for(lambda: status_of(run_store, "run-1") is RunStatus.FAILED)

    assert took < 5
    run = run_store.get_run("run-1")
    assert "killed by signal SIGKILL" in (run.failure_reason or "")
    assert run.finished_at is not None
    assert run.finished_at >= (run.started_at or run.finished_at)
    wait_for(lambda: servers(run_store) == [])
    assert runner.status("run-1").status is RunStatus.FAILED
    [usage] = all_usage(run_store)
    assert (usage.run_id, usage.dimension) == ("run-1", "training_cpu_hours")
    assert (usage.start, usage.end) == (run.started_at, run.finished_at)


class FlakyStore:
    """The store, but its next ``failures`` run updates fail as a locked database would."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.failures = 0

    def update_run(self, run: Run) -> Run:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("database is locked")
        updated: Run = self.store.update_run(run)
        return updated

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_the_end_of_a_job_is_recorded_even_when_the_store_fails_for_a_while(
    run_store: Any, jobs: Jobs, tmp_path: Path
) -> None:
    jobs.script("run-1", WAIT_FOR_GATE + "sys.exit(4)")
    flaky = FlakyStore(run_store)
    new_run(run_store, "run-1")
    with LocalJobRunner(
        flaky, log_dir=tmp_path, command=jobs, poll_interval=0.05, host=HOST
    ) as runner:
        runner.submit(JobSpec(JobKind.TRAIN, "run-1"))
        pid_of(run_store, "run-1")
        flaky.failures = 5
        jobs.open_gate("run-1")
        wait_for(lambda: status_of(run_store, "run-1") is RunStatus.FAILED)
    assert (run_store.get_run("run-1").failure_reason or "").startswith("exited with code 4")


def test_exit_code_is_reported_with_the_log_to_read(
    make_runner: Callable[..., LocalJobRunner], run_store: Any, jobs: Jobs, tmp_path: Path
) -> None:
    jobs.script("run-1", "import sys; print('bad input', flush=True); sys.exit(3)")
    runner = make_runner()
    submit(runner, run_store, "run-1")

    wait_for(lambda: status_of(run_store, "run-1") is RunStatus.FAILED)

    reason = run_store.get_run("run-1").failure_reason or ""
    assert reason.startswith("exited with code 3")
    assert str(tmp_path / "logs" / "run-1.log") in reason
    assert runner.status("run-1") == replace(
        runner.status("run-1"), status=RunStatus.FAILED, reason=reason
    )


def test_describe_exit_names_codes_and_signals() -> None:
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(137) == "exited with code 137"
    assert describe_exit(-9) == "killed by signal SIGKILL"
    assert describe_exit(-15) == "killed by signal SIGTERM"


def test_a_job_that_exits_0_without_reporting_succeeds_and_its_output_is_logged(
    make_runner: Callable[..., LocalJobRunner], run_store: Any, jobs: Jobs, tmp_path: Path
) -> None:
    jobs.script(
        "run-1",
        "import os; print(os.environ['ANNOTRAIN_RUN_ID'], "
        "repr(os.environ['CUDA_VISIBLE_DEVICES']), os.environ['EXTRA'])",
    )
    runner = make_runner(env={"EXTRA": "from-env"})
    submit(runner, run_store, "run-1")

    wait_for(lambda: status_of(run_store, "run-1") is RunStatus.SUCCEEDED)

    log = (tmp_path / "logs" / "run-1.log").read_text()
    assert log.strip() == "run-1 '' from-env"
    run = run_store.get_run("run-1")
    assert (run.failure_reason, run.progress) == (None, 100.0)


def test_a_job_that_reported_its_result_is_left_as_it_reported(
    make_runner: Callable[..., LocalJobRunner], run_store: Any, jobs: Jobs
) -> None:
    jobs.script("run-1", WAIT_FOR_GATE + "sys.exit(1)")
    runner = make_runner()
    submit(runner, run_store, "run-1")
    pid_of(run_store, "run-1")
    wait_for(lambda: len(servers(run_store)) == 1)

    # What the job's runtime does when its work is done: it reports, then exits.
    run = run_store.get_run("run-1")
    reported = run_store.update_run(
        replace(run, status=RunStatus.SUCCEEDED, finished_at=datetime.now(UTC), progress=100.0)
    )
    jobs.open_gate("run-1")
    wait_for(lambda: servers(run_store) == [])

    assert run_store.get_run("run-1") == reported
    usage = all_usage(run_store)
    assert [(u.run_id, u.dimension) for u in usage] == [("run-1", "training_cpu_hours")]
    assert usage[0].start == reported.started_at
    assert usage[0].end == reported.finished_at


def test_a_running_job_has_a_server_record_naming_its_host_and_process(
    make_runner: Callable[..., LocalJobRunner], run_store: Any
) -> None:
    runner = make_runner()
    submit(runner, run_store, "run-1", kind=JobKind.OCR, use_gpu=True)
    pid = pid_of(run_store, "run-1")
    wait_for(lambda: len(servers(run_store)) == 1)

    [server] = servers(run_store)
    run = run_store.get_run("run-1")
    assert server == Server("run-1", JobKind.OCR, 1, "ana", run.started_at, True, f"{HOST}:{pid}")
    assert runner.status("run-1").status is RunStatus.RUNNING
    assert runner.status("run-1").job_ref == f"{HOST}:{pid}"


# --- limits and the queue --------------------------------------------------------


def test_with_a_limit_of_1_the_second_job_of_a_kind_waits_until_the_first_ends(
    make_runner: Callable[..., LocalJobRunner], run_store: Any, jobs: Jobs
) -> None:
    for run_id in ("first", "second", "ocr"):
        jobs.script(run_id, WAIT_FOR_GATE)
    runner = make_runner()
    submit(runner, run_store, "first")
    submit(runner, run_store, "second")
    submit(runner, run_store, "ocr", kind=JobKind.OCR)

    pid_of(run_store, "first")
    pid_of(run_store, "ocr")  # another kind has its own slot
    time.sleep(0.5)
    assert status_of(run_store, "second") is RunStatus.QUEUED
    assert runner.status("second").status is RunStatus.QUEUED

    jobs.open_gate("first")
    pid_of(run_store, "second")
    first, second = run_store.get_run("first"), run_store.get_run("second")
    assert first.status is RunStatus.SUCCEEDED
    assert second.started_at >= first.finished_at
    for run_id in ("second", "ocr"):
        jobs.open_gate(run_id)


def test_queued_jobs_start_first_in_first_out(
    make_runner: Callable[..., LocalJobRunner], run_store: Any, jobs: Jobs
) -> None:
    names = ["a", "b", "c", "d"]
    for name in names:
        jobs.script(name, WAIT_FOR_GATE)
        jobs.open_gate(name)
    runner = make_runner(start=False)
    for name in reversed(names):
        new_run(run_store, name)
    for name in ["c", "a", "d", "b"]:
        runner.submit(JobSpec(JobKind.TRAIN, name))
    runner.start()

    wait_for(lambda: all(status_of(run_store, n) is RunStatus.SUCCEEDED for n in names))

    runs = sorted((run_store.get_run(n) for n in names), key=lambda r: r.started_at)
    assert [r.id for r in runs] == ["c", "a", "d", "b"]


def test_a_higher_limit_runs_that_many_jobs_of_a_kind_at_once(
    make_runner: Callable[..., LocalJobRunner], run_store: Any, jobs: Jobs
) -> None:
    runner = make_runner(limits={JobKind.TRAIN: 2})
    for run_id in ("a", "b", "c"):
        jobs.script(run_id, WAIT_FOR_GATE)
        submit(runner, run_store, run_id)

    pid_of(run_store, "a")
    pid_of(run_store, "b")
    time.sleep(0.3)
    assert status_of(run_store, "c") is RunStatus.QUEUED
    for run_id in ("a", "b", "c"):
        jobs.open_gate(run_id)
    wait_for(lambda: status_of(run_store, "c") is RunStatus.SUCCEEDED)


# --- cancel ------------------------------------------------------------------------


def test_cancelling_a_queued_job_takes_it_off_the_queue_and_never_starts_it(
    make_runner: Callable[..., LocalJobRunner], run_store: Any, jobs: Jobs, tmp_path: Path
) -> None:
    jobs.script("first", WAIT_FOR_GATE)
    jobs.script("second", "raise SystemExit('must never run')")
    runner = make_runner()
    submit(runner, run_store, "first")
    submit(runner, run_store, "second")
    pid_of(run_store, "first")

    runner.cancel("second")

    run = run_store.get_run("second")
    assert (run.status, run.failure_reason) == (RunStatus.CANCELLED, CANCELLED_REASON)
    assert run.finished_at is not None
    assert runner.status("second").status is RunStatus.CANCELLED
    jobs.open_gate("first")
    wait_for(lambda: status_of(run_store, "first") is RunStatus.SUCCEEDED)
    time.sleep(0.2)
    assert not (tmp_path / "logs" / "second.log").exists()
    assert status_of(run_store, "second") is RunStatus.CANCELLED


def test_cancelling_a_running_job_stops_its_whole_process_group_and_cancels_the_run(
    make_runner: Callable[..., LocalJobRunner], run_store: Any, jobs: Jobs, tmp_path: Path
) -> None:
    child_pid_file = tmp_path / "child.pid"
    jobs.script(
        "run-1",
        f"""
        import pathlib, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        pathlib.Path({str(child_pid_file)!r}).write_text(str(child.pid))
        time.sleep(60)
        """,
    )
    runner = make_runner()
    submit(runner, run_store, "run-1")
    pid = pid_of(run_store, "run-1")
    wait_for(child_pid_file.exists)
    wait_for(lambda: child_pid_file.read_text() != "")
    child = int(child_pid_file.read_text())

    runner.cancel("run-1")

    run = run_store.get_run("run-1")
    assert (run.status, run.failure_reason) == (RunStatus.CANCELLED, CANCELLED_REASON)
    wait_for(lambda: process_gone(pid) and process_gone(child))
    wait_for(lambda: servers(run_store) == [])
    assert status_of(run_store, "run-1") is RunStatus.CANCELLED  # not failed by the signal
    assert runner.status("run-1").status is RunStatus.CANCELLED


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(
    make_runner: Callable[..., LocalJobRunner], run_store: Any, jobs: Jobs
) -> None:
    jobs.script(
        "run-1",
        """
        import pathlib, signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pathlib.Path(sys.argv[1] + ".ready").touch()
        time.sleep(60)
        """,
    )
    runner = make_runner(grace_period=0.5)
    submit(runner, run_store, "run-1")
    pid = pid_of(run_store, "run-1")
    wait_for(Path(f"{jobs.gate('run-1')}.ready").exists)

    runner.cancel("run-1")

    took = wait_for(lambda: process_gone(pid))
    assert 0.4 < took < 5
    wait_for(lambda: servers(run_store) == [])
    assert status_of(run_store, "run-1") is RunStatus.CANCELLED


def test_cancelling_twice_or_after_the_end_changes_nothing(
    make_runner: Callable[..., LocalJobRunner], run_store: Any, jobs: Jobs
) -> None:
    jobs.script("run-1", "pass")
    runner = make_runner()
    submit(runner, run_store, "run-1")
    wait_for(lambda: status_of(run_store, "run-1") is RunStatus.SUCCEEDED)
    done = run_store.get_run("run-1")

    runner.cancel("run-1")
    runner.cancel("run-1")

    assert run_store.get_run("run-1") == done
    with pytest.raises(NotFoundError):
        runner.cancel("run-404")


# --- heartbeats --------------------------------------------------------------------


def test_a_live_job_whose_heartbeat_stops_is_killed_and_failed(
    make_runner: Callable[..., LocalJobRunner], run_store: Any
) -> None:
    runner = make_runner(heartbeat_timeout=1.5)
    submit(runner, run_store, "run-1")
    pid = pid_of(run_store, "run-1")

    # The job's heartbeat thread, as batch_jobs.runtime runs it, for a while.
    beating = threading.Event()
    beating.set()

    def beat() -> None:
        while beating.is_set():
            run = run_store.get_run("run-1")
            run_store.update_run(replace(run, heartbeat_at=datetime.now(UTC)))
            time.sleep(0.05)

    heart = threading.Thread(target=beat)
    heart.start()
    try:
        time.sleep(3)
        assert status_of(run_store, "run-1") is RunStatus.RUNNING
    finally:
        beating.clear()
        heart.join()

    wait_for(lambda: status_of(run_store, "run-1") is RunStatus.FAILED)
    assert (run_store.get_run("run-1").failure_reason or "").startswith("no heartbeat for ")
    wait_for(lambda: process_gone(pid))
    wait_for(lambda: servers(run_store) == [])
    assert status_of(run_store, "run-1") is RunStatus.FAILED


# --- restart, recovery and shutdown ------------------------------------------------


def left_running(store: Any, run_id: str, job_ref: str, **kwargs: Any) -> Run:
    """A run a previous server recorded as running, with its server record."""
    run = new_run(store, run_id, **kwargs)
    started = datetime.now(UTC)
    running = store.update_run(
        replace(run, status=RunStatus.RUNNING, started_at=started, job_ref=job_ref,
                heartbeat_at=started)
    )  # fmt: skip
    store.put_server(Server(run_id, run.kind, 1, "ana", started, False, job_ref))
    stored: Run = running
    return stored


def test_a_runner_started_after_a_crash_leaves_no_run_stuck_running(
    make_runner: Callable[..., LocalJobRunner], run_store: Any
) -> None:
    left_running(run_store, "run-1", "otherhost:4242")
    left_running(run_store, "run-2", f"{HOST}:999999999")
    run_store.put_server(Server("ghost", JobKind.OCR, 1, "ana", CREATED, False, "x:1"))

    make_runner()

    assert run_store.list_runs_by_status(RunStatus.RUNNING).items == []
    for run_id in ("run-1", "run-2"):
        run = run_store.get_run(run_id)
        assert (run.status, run.failure_reason) == (RunStatus.FAILED, RESTARTED_REASON)
        assert run.finished_at is not None
    assert servers(run_store) == []


def test_recovery_kills_a_job_process_a_crashed_server_left_behind(
    make_runner: Callable[..., LocalJobRunner], run_store: Any
) -> None:
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        env={**os.environ, "ANNOTRAIN_RUN_ID": "run-1"},
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    try:
        # Up and running, as a job a crashed server left is: just after exec, Linux
        # may not show the new environment yet.
        assert orphan.stdout is not None
        assert orphan.stdout.readline() == b"ready\n"
        left_running(run_store, "run-1", f"{HOST}:{orphan.pid}")
        make_runner()
        assert orphan.wait(timeout=5) == -signal.SIGKILL
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
        orphan.stdout.close()
    assert status_of(run_store, "run-1") is RunStatus.FAILED


def test_with_requeue_interrupted_and_waiting_runs_run_again(
    make_runner: Callable[..., LocalJobRunner], run_store: Any, jobs: Jobs
) -> None:
    jobs.script("interrupted", "pass")
    jobs.script("waiting", "pass")
    left_running(run_store, "interrupted", "otherhost:4242")
    run = new_run(run_store, "waiting")
    run_store.update_run(replace(run, job_ref=f"{HOST}:queued"))  # a lost queue entry
    new_run(run_store, "never-submitted")

    make_runner(requeue=True)

    wait_for(lambda: status_of(run_store, "interrupted") is RunStatus.SUCCEEDED)
    wait_for(lambda: status_of(run_store, "waiting") is RunStatus.SUCCEEDED)
    assert status_of(run_store, "never-submitted") is RunStatus.QUEUED


def test_shutdown_stops_running_jobs_and_fails_their_runs_and_keeps_the_queue(
    make_runner: Callable[..., LocalJobRunner], run_store: Any, jobs: Jobs
) -> None:
    runner = make_runner()
    submit(runner, run_store, "running")
    submit(runner, run_store, "waiting")
    pid = pid_of(run_store, "running")

    runner.shutdown()

    assert process_gone(pid)
    run = run_store.get_run("running")
    assert (run.status, run.failure_reason) == (RunStatus.FAILED, STOPPED_REASON)
    assert status_of(run_store, "waiting") is RunStatus.QUEUED
    assert servers(run_store) == []

    jobs.script("waiting", "pass")
    make_runner()
    wait_for(lambda: status_of(run_store, "waiting") is RunStatus.SUCCEEDED)


def test_used_as_a_context_manager_it_starts_and_stops(
    run_store: Any, jobs: Jobs, tmp_path: Path
) -> None:
    jobs.script("run-1", "pass")
    new_run(run_store, "run-1")
    with LocalJobRunner(
        run_store, log_dir=tmp_path, command=jobs, poll_interval=0.05, host=HOST
    ) as runner:
        runner.submit(JobSpec(JobKind.TRAIN, "run-1"))
        wait_for(lambda: status_of(run_store, "run-1") is RunStatus.SUCCEEDED)


# --- the port's refusals -------------------------------------------------------------


def test_status_of_an_unknown_or_never_submitted_run_is_not_found(
    make_runner: Callable[..., LocalJobRunner], run_store: Any
) -> None:
    runner = make_runner()
    new_run(run_store, "run-1")
    with pytest.raises(NotFoundError):
        runner.status("run-404")
    with pytest.raises(NotFoundError):
        runner.status("run-1")


def test_submit_refuses_a_run_twice_a_run_not_queued_and_an_unsafe_run_id(
    make_runner: Callable[..., LocalJobRunner], run_store: Any
) -> None:
    runner = make_runner(start=False)
    assert submit(runner, run_store, "run-1") == f"{HOST}:queued"
    assert run_store.get_run("run-1").job_ref == f"{HOST}:queued"
    assert runner.status("run-1").status is RunStatus.QUEUED
    with pytest.raises(AlreadyExistsError):
        runner.submit(JobSpec(JobKind.TRAIN, "run-1"))
    with pytest.raises(NotFoundError):
        runner.submit(JobSpec(JobKind.TRAIN, "run-404"))
    cancelled = new_run(run_store, "run-2")
    run_store.update_run(replace(cancelled, status=RunStatus.CANCELLED))
    with pytest.raises(InvalidRequestError):
        runner.submit(JobSpec(JobKind.TRAIN, "run-2"))
    new_run(run_store, "run-3")
    with pytest.raises(InvalidRequestError):
        runner.submit(JobSpec(JobKind.OCR, "run-3"))
    with pytest.raises(InvalidRequestError):
        runner.submit(JobSpec(JobKind.TRAIN, "../escape"))


def test_the_default_command_runs_the_job_module_of_its_kind() -> None:
    spec = JobSpec(JobKind.PREANNOTATE, "run-1")
    assert job_module_command(spec) == [
        sys.executable, "-m", "batch_jobs.preannotate", "--run-id", "run-1",
    ]  # fmt: skip


def test_a_job_that_cannot_start_fails_its_run_saying_why(
    make_runner: Callable[..., LocalJobRunner], run_store: Any
) -> None:
    runner = make_runner(command=lambda spec: ["/nonexistent/python", "-m", "batch_jobs.train"])
    submit(runner, run_store, "run-1")

    wait_for(lambda: status_of(run_store, "run-1") is RunStatus.FAILED)

    reason = run_store.get_run("run-1").failure_reason or ""
    assert reason.startswith("could not start the job:")
    assert "/nonexistent/python" in reason
    with pytest.raises(RuntimeError):
        runner.recover()


def test_a_limit_below_1_is_refused(run_store: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError):
        LocalJobRunner(run_store, log_dir=tmp_path, limits={JobKind.TRAIN: 0})
