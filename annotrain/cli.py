"""The ``annotrain`` command: the composition root of the single-node mode.

Exit codes: 0 done, 2 the input was refused (the errors say where and how to
fix it), 1 anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from annotrain import __version__
from annotrain.domain.config import MAX_CONFIG_BYTES, ProjectSchema, parse_labeling_config
from annotrain.domain.conll import ConllExportReport, write_conll
from annotrain.domain.errors import (
    AlreadyExistsError,
    AnnotrainError,
    InvalidRequestError,
    LabelingConfigError,
    TaskImportError,
)
from annotrain.domain.export import ExportFilter, ExportFormat, filter_for_export, render_tasks
from annotrain.domain.labelstudio import load_tasks
from annotrain.domain.selection import SkipReason, select_training_completions
from annotrain.domain.training_plan import implied_models

if TYPE_CHECKING:
    from annotrain.adapters.sqlite import SqliteStore
    from annotrain.ports import JobRunner
    from annotrain.services.first_boot import PaygLicenseProvisioner, PaygLicenseRequest
    from annotrain.settings import Settings

EXIT_REFUSED = 2
#: ``first-boot`` on an instance that was not launched from the Marketplace listing.
EXIT_NOT_MARKETPLACE = 3
FORMATS = tuple(f.value for f in ExportFormat)
# A task file is read whole to be checked whole before anything is written.
MAX_TASKS_FILE_BYTES = 2 * 1024**3


class _RefusedInputError(Exception):
    """Input the command will not use; the message is for the user."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except _RefusedInputError as exc:
        print(f"annotrain: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except LabelingConfigError as exc:
        _print_errors(f"{args.config}: the labeling config is not valid", exc.issues)
        return EXIT_REFUSED
    except TaskImportError as exc:
        _print_errors(f"{args.input}: the tasks were not imported", exc.problems)
        return EXIT_REFUSED
    except (InvalidRequestError, AlreadyExistsError) as exc:
        print(f"annotrain: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except AnnotrainError as exc:
        # Licenses refused, scopes missing, server limits: the message says what to do.
        print(f"annotrain: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return code


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="annotrain",
        description="Turn Label Studio annotations into trained NLP and Visual NER models.",
    )
    parser.add_argument("--version", action="version", version=f"annotrain {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser("config", help="work with labeling configs")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    validate = config_commands.add_parser(
        "validate",
        help="check a labeling config and print the models it implies (JSON)",
        description="Exit 0 and a JSON summary when valid; exit 2 and the errors otherwise.",
    )
    validate.add_argument("config", metavar="FILE.xml", type=Path)
    validate.add_argument(
        "--classifiers",
        metavar="NAME,…",
        help='Choices names to train classifiers for (default: train="true" ones, '
        "else the first name alphabetically)",
    )
    validate.set_defaults(handler=_validate)

    convert = commands.add_parser(
        "convert",
        help="check Label Studio JSON against a config and export it",
        description="Import Label Studio JSON (annotations or completions) checked against "
        "the config, then export it. CoNLL holds, per task, the completion training would "
        "use. Exit 2 with the import errors when any task is inconsistent.",
    )
    convert.add_argument("--config", required=True, type=Path, metavar="CFG.xml")
    convert.add_argument("--to", required=True, choices=FORMATS, dest="format")
    convert.add_argument("input", metavar="IN.json", help="Label Studio JSON; - for stdin")
    convert.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    convert.add_argument(
        "--only-ground-truth", action="store_true", help="keep only ground-truth completions"
    )
    convert.add_argument(
        "--skip-empty", action="store_true", help="leave out tasks without completions"
    )
    convert.add_argument(
        "--annotator",
        action="append",
        default=[],
        metavar="WHO",
        help="keep only completions by this author (repeatable)",
    )
    convert.set_defaults(handler=_convert)

    users = commands.add_parser("users", help="manage the users of a single-node lab")
    users_commands = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    create_user = users_commands.add_parser(
        "create",
        help="create a user and print their API token",
        description="Create a user with an API token. The token is printed once, alone on "
        "the last line of stdout; only its hash is kept.",
    )
    create_user.add_argument("name", metavar="NAME")
    create_user.add_argument("--role", choices=("admin", "user"), default="user")
    _add_data_dir(create_user)
    create_user.set_defaults(handler=_users_create)

    serve = commands.add_parser(
        "serve",
        help="serve the HTTP API on this machine",
        description="Serve the HTTP API over the SQLite store in the data folder. The first "
        "start creates an admin and writes its API token to DATA_DIR/admin-token.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--demo",
        type=Path,
        metavar="DIR",
        help="on the first start, also create a demo project from DIR/config.xml and "
        "DIR/tasks.json (make run uses examples/sample_project)",
    )
    _add_data_dir(serve)
    serve.set_defaults(handler=_serve)
    _add_job_commands(commands)
    _add_license_commands(commands)
    _add_ami_commands(commands)
    return parser


def _add_license_commands(commands: Any) -> None:
    lic = commands.add_parser("licenses", help="the lab's licenses (single node)")
    lic_commands = lic.add_subparsers(dest="licenses_command", required=True, metavar="ACTION")
    listing = lic_commands.add_parser(
        "list", help="print the stored licenses and whether each is in force (JSON)"
    )
    _add_data_dir(listing)
    listing.set_defaults(handler=_licenses_list)
    generate = lic_commands.add_parser(
        "generate-payg",
        help="generate and store this Marketplace instance's PAYG license (first boot)",
        description="Make the instance key (DATA_DIR/license-signing-key, mode 0600) if "
        "there is none, then generate, sign and store the PAYG license bound to the "
        "instance. Refused (exit 2) without a product code: not a Marketplace launch.",
    )
    generate.add_argument("--instance-id", required=True, help="i-… (instance identity document)")
    generate.add_argument("--product-code", required=True, help="the Marketplace product code")
    _add_data_dir(generate)
    generate.set_defaults(handler=_licenses_generate_payg)
    renew = lic_commands.add_parser(
        "renew",
        help="generate the next PAYG license if the current one expires soon (timer)",
        description="Idempotent: does nothing (exit 0) while the current PAYG license is "
        "valid for longer than ANNOTRAIN_PAYG_RENEW_BEFORE_DAYS and its limits match the "
        "settings; otherwise makes the next one, valid from now (no gap).",
    )
    _add_data_dir(renew)
    renew.set_defaults(handler=_licenses_renew)

    metering = commands.add_parser("metering", help="AWS Marketplace metering (the AMI)")
    metering_commands = metering.add_subparsers(
        dest="metering_command", required=True, metavar="ACTION"
    )
    send = metering_commands.add_parser(
        "send",
        help="count the last complete hours and send them with MeterUsage (hourly timer)",
        description="Counts server hours per dimension into the local ledger and sends "
        "what AWS has not taken yet; a crash or retry never bills an hour twice. Exit 1 "
        "when a send failed (it is retried next time).",
    )
    send.add_argument("--region", help="the instance's AWS region (default: boto3's)")
    _add_data_dir(send)
    send.set_defaults(handler=_metering_send)


def _add_ami_commands(commands: Any) -> None:
    first_boot = commands.add_parser(
        "first-boot",
        help="provision a Marketplace instance, once (the AMI's first-boot oneshot)",
        description="Read the instance identity through IMDSv2, check the Marketplace "
        "product code, generate the PAYG license bound to the instance, create the admin "
        "whose first API token is the instance id, enable the renewal and metering timers. "
        "A second run on the same instance does nothing. Exit 0 when provisioned or already "
        f"done, {EXIT_NOT_MARKETPLACE} when the instance is not a Marketplace launch "
        "(nothing generated), 1 on any other failure.",
    )
    first_boot.add_argument(
        "--imds-endpoint", help="the metadata service (default: $ANNOTRAIN_IMDS_ENDPOINT)"
    )
    first_boot.add_argument(
        "--product-code",
        help="this AMI's Marketplace product code (default: $ANNOTRAIN_MARKETPLACE_PRODUCT_CODE)",
    )
    first_boot.add_argument(
        "--no-systemctl",
        action="store_true",
        help="do not enable the timers (outside systemd: a container, a test)",
    )
    _add_data_dir(first_boot)
    first_boot.set_defaults(handler=_first_boot)

    backup = commands.add_parser(
        "backup",
        help="back the lab up while it runs (database, files, manifest)",
        description="Copy the SQLite database online and every file of the data folder to "
        "a folder or s3://bucket/prefix, then write the manifest (sizes, SHA-256) last: a "
        "backup without a manifest is partial and never restored. Prints the backup's "
        "location on stdout.",
    )
    backup.add_argument(
        "--to",
        metavar="DIR|s3://BUCKET/PREFIX",
        help="where (default: $ANNOTRAIN_BACKUP_TARGET, else DATA_DIR/backups)",
    )
    backup.add_argument(
        "--keep", type=int, metavar="N", help="then delete all but the N newest complete backups"
    )
    backup.add_argument(
        "--list", action="store_true", help="list the backups there (JSON) instead of backing up"
    )
    _add_data_dir(backup)
    backup.set_defaults(handler=_backup)

    restore = commands.add_parser(
        "restore",
        help="replace the lab's data with a backup's, after checking every file",
        description="Copy every file of the backup into a staging folder, checking its size "
        "and SHA-256 against the manifest, check the database, and only then swap it in. "
        "Refuses a partial or changed backup (naming the file), and a lab in use: stop the "
        "API server first (sudo systemctl stop annotrain-api).",
    )
    restore.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="DIR/NAME|s3://BUCKET/PREFIX/NAME",
        help="the backup (as 'annotrain backup' printed it)",
    )
    restore.add_argument(
        "--keep-previous",
        action="store_true",
        help="keep the replaced data in DATA_DIR/.restore-*/previous instead of deleting it",
    )
    _add_data_dir(restore)
    restore.set_defaults(handler=_restore)

    project = commands.add_parser(
        "project",
        help="move a project between labs (single node and serverless)",
        description="Export a project (config, members, tasks with completions, reviews and "
        "predictions) to a JSON Lines file, or import one as a new project. Works on this "
        "node's SQLite lab, or on a serverless lab's table with ANNOTRAIN_MODE=serverless, "
        "ANNOTRAIN_TABLE and ANNOTRAIN_OVERFLOW_BUCKET set (and AWS credentials).",
    )
    project_commands = project.add_subparsers(
        dest="project_command", required=True, metavar="ACTION"
    )
    export = project_commands.add_parser("export", help="write a project to a file")
    export.add_argument("project", type=int, metavar="PROJECT")
    export.add_argument("--to", required=True, type=Path, metavar="FILE.jsonl")
    _add_data_dir(export)
    export.set_defaults(handler=_project_export)
    import_ = project_commands.add_parser(
        "import", help="make a new project from an export (all of it, or nothing)"
    )
    import_.add_argument("input", type=Path, metavar="FILE.jsonl")
    import_.add_argument("--name", help="the new project's name (default: the exported one)")
    import_.add_argument(
        "--as", dest="user", default="admin", help="who the project is created by (admin)"
    )
    _add_data_dir(import_)
    import_.set_defaults(handler=_project_import)


def _add_job_commands(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a project's models on this machine and wait for the result",
        description="Start a training of PROJECT (its id) as POST /api/v1/projects/{id}/"
        "trainings does, run it in a local worker and show its progress on stderr. Exit 0 "
        "when it succeeded (the scores on stdout, JSON), 1 with the reason when it failed, "
        "2 when the request was refused. Ctrl-C cancels the run.",
    )
    train.add_argument("project", type=int, metavar="PROJECT")
    train.add_argument(
        "--types", help="ner,assertion,classification,visual_ner (default: all implied)"
    )
    for name, kind in (("epochs", int), ("learning-rate", float), ("decay", float),
                       ("dropout", float), ("batch-size", int), ("max-length", int),
                       ("seed", int), ("early-stopping-patience", int), ("eval-steps", int),
                       ("max-steps", int)):  # fmt: skip
        train.add_argument(f"--{name}", type=kind)
    train.add_argument("--base-model", help="default: the project language's encoder")
    train.add_argument("--validation-share", type=float, help="test share (default 0.2)")
    train.add_argument("--train-tag", help="split by tags: this tag trains…")
    train.add_argument("--test-tag", help="…and this one tests")
    train.add_argument("--tags", help="only tasks with one of these tags (comma-separated)")
    train.add_argument("--reviewed-only", action="store_true")
    train.add_argument("--classifiers", help="Choices names to train classifiers for")
    train.add_argument("--gpu", action="store_true", help="train on the GPU")
    train.add_argument("--no-deploy", action="store_true", help="do not deploy the models")
    _add_wait(train)
    train.set_defaults(handler=_train)

    preannotate = commands.add_parser(
        "preannotate",
        help="pre-annotate a project's tasks with its deployed models and wait",
        description="Start a pre-annotation of PROJECT as POST /api/v1/projects/{id}/"
        "preannotations does, run it in a local worker and show its progress on stderr.",
    )
    preannotate.add_argument("project", type=int, metavar="PROJECT")
    preannotate.add_argument("--tasks", help="task ids, comma-separated (default: incomplete)")
    preannotate.add_argument("--models", help="model names, comma-separated (default: deployed)")
    _add_wait(preannotate)
    preannotate.set_defaults(handler=_preannotate)


def _add_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        default=True,
        help="wait for the run to end (always: the local worker lives as long as the command)",
    )
    parser.add_argument("--user", default="admin", help="who the run is recorded as started by")
    _add_data_dir(parser)


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the lab's data folder (default: $ANNOTRAIN_DATA_DIR, else .annotrain)",
    )


def _read_config(path: Path) -> ProjectSchema:
    return parse_labeling_config(_read_bytes(path, MAX_CONFIG_BYTES + 1))


def _read_bytes(path: Path | str, limit: int) -> bytes:
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
    except OSError as exc:
        raise _RefusedInputError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise _RefusedInputError(f"{path} is larger than {limit} bytes")
    return data


def _validate(args: argparse.Namespace) -> int:
    schema = _read_config(args.config)
    classifiers = args.classifiers.split(",") if args.classifiers else None
    json.dump(_summary(schema, classifiers), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def _summary(schema: ProjectSchema, classifiers: list[str] | None) -> dict[str, Any]:
    return {
        "valid": True,
        "objects": [
            {"name": o.name, "tag": o.tag, "value": o.value} for o in schema.objects.values()
        ],
        "controls": [
            {
                "name": c.name,
                "tag": c.tag,
                "to_name": list(c.to_names),
                "labels": [o.value for o in c.options],
            }
            for c in schema.controls.values()
        ],
        "models": [
            {
                "kind": m.kind.value,
                "name": m.name,
                "labels": list(m.labels),
                "multi_label": m.multi_label,
                "from_names": list(m.from_names),
                "to_names": list(m.to_names),
                "pretrained": {model: list(labels) for model, labels in m.pretrained},
            }
            for m in implied_models(schema, classifiers)
        ],
        "warnings": [str(w) for w in schema.warnings],
    }


def _convert(args: argparse.Namespace) -> int:
    schema = _read_config(args.config)
    # Everything is checked before a byte of output is written.
    tasks = load_tasks(_read_bytes(args.input, MAX_TASKS_FILE_BYTES), schema)
    rules = ExportFilter(
        only_ground_truth=args.only_ground_truth,
        skip_tasks_without_completions=args.skip_empty,
        annotators=frozenset(args.annotator),
    )
    kept = filter_for_export(tasks, rules)
    export_format = ExportFormat(args.format)
    with _output(args.output) as out:
        if export_format is not ExportFormat.CONLL:
            out.writelines(render_tasks(kept, export_format))
        else:
            selection = select_training_completions(kept)
            report = write_conll(selection.chosen, schema, out)
            _tell_what_conll_left_out(selection.skipped, report)
    return 0


def _tell_what_conll_left_out(skipped: Mapping[SkipReason, int], report: ConllExportReport) -> None:
    """Say on stderr what the export could not hold, so no label goes missing unseen."""
    print(f"annotrain: wrote {report.documents} documents", file=sys.stderr)
    for reason, count in skipped.items():
        print(f"annotrain: {count} task(s) left out: {reason}", file=sys.stderr)
    if report.skipped_tasks:
        ids = ", ".join(map(str, report.skipped_tasks[:20]))
        print(f"annotrain: task(s) without the NER text left out: {ids}", file=sys.stderr)
    for region in report.dropped[:50]:
        span = region.span
        print(
            f"annotrain: task {region.task_id}, completion {region.completion_id}, result "
            f"{region.result_id}: {span.label!r} at {span.start}..{span.end} left out "
            f"({span.reason})",
            file=sys.stderr,
        )
    if len(report.dropped) > 50:
        print(f"annotrain: and {len(report.dropped) - 50} more regions", file=sys.stderr)


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    """Stdout, or a file that appears whole or not at all (temp file + rename)."""
    if path is None:
        yield sys.stdout
        return
    directory = path.resolve().parent
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _settings(data_dir: Path | None) -> Settings:
    """The settings, with the data folder the command line names (the api extra's)."""
    from annotrain.settings import get_settings

    settings = get_settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    return settings


def _open_store(settings: Settings) -> SqliteStore:
    from annotrain.adapters.sqlite import SqliteStore

    # Made private: the database holds token hashes and everyone's annotations.
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return SqliteStore(settings.database_path)


def _users_create(args: argparse.Namespace) -> int:
    from annotrain.adapters.system_clock import SystemClock
    from annotrain.domain.records import UserRole
    from annotrain.services.users import create_user

    settings = _settings(args.data_dir)
    with _open_store(settings) as store:
        user, token = create_user(store, args.name, UserRole(args.role), SystemClock())
    print(
        f"annotrain: created {user.role.value} {user.name!r} in {settings.database_path}; "
        "their API token follows, shown only this once:",
        file=sys.stderr,
    )
    print(token)
    return 0


#: Where the first start leaves the first admin's token, readable by its owner only.
ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from annotrain.adapters.ed25519 import licensing_from_settings
    from annotrain.adapters.lab_lock import LabLock
    from annotrain.adapters.local_runner import LocalJobRunner
    from annotrain.adapters.system_clock import SystemClock
    from annotrain.domain.errors import LabBusyError
    from annotrain.services.licenses import GrantCache, runner_limits

    settings = _settings(args.data_dir)
    try:
        # Held while serving: `annotrain restore` refuses to replace the data meanwhile.
        lab_lock = LabLock(settings.data_dir).shared("start the server")
        lab_lock.__enter__()
    except LabBusyError as exc:
        raise _RefusedInputError(str(exc)) from None
    try:
        store = _open_store(settings)
        try:
            licensing = licensing_from_settings(settings)
            clock = SystemClock()
            grants = GrantCache(
                lambda: licensing.grant(store, clock.now()), settings.license_cache_seconds, clock
            )
            # Jobs open the same SQLite file; the runner recovers what a previous server
            # left running before it takes new jobs, and stops its jobs when uvicorn
            # returns. It runs as many jobs of a kind at once as the license allows servers.
            runner = LocalJobRunner(
                store, log_dir=settings.data_dir / "logs", env=_job_env(settings),
                limits=lambda: runner_limits(grants.get()),
            )  # fmt: skip
            app = _serving_app(settings, store, args.demo, runner=runner)
            runner.start()
            try:
                loop, http = _event_loop_and_parser()
                uvicorn.run(app, host=args.host, port=args.port, loop=loop, http=http)
            finally:
                runner.shutdown()
        finally:
            store.close()
    finally:
        lab_lock.__exit__(None, None, None)
    return 0


def _first_boot(args: argparse.Namespace) -> int:
    from annotrain.adapters.imds import Imdsv2Metadata
    from annotrain.adapters.lab_lock import LabLock
    from annotrain.adapters.system_clock import SystemClock
    from annotrain.domain.errors import AnnotrainError
    from annotrain.services.first_boot import NotAMarketplaceLaunchError, run_first_boot
    from annotrain.settings import FirstBootSettings

    settings = _settings(args.data_dir)
    boot = FirstBootSettings()
    endpoint = args.imds_endpoint or boot.imds_endpoint
    code = boot.marketplace_product_code if args.product_code is None else args.product_code

    def enable_units(units: Sequence[str]) -> None:
        if args.no_systemctl:
            print(f"annotrain: --no-systemctl: not enabling {', '.join(units)}", file=sys.stderr)
        else:
            enable_systemd_units(units)

    with LabLock(settings.data_dir).shared("run first boot"), _open_store(settings) as store:
        try:
            result = run_first_boot(
                metadata=Imdsv2Metadata(endpoint),
                users=store,
                clock=SystemClock(),
                provision_license=payg_license_provisioner(settings, store),
                enable_units=enable_units,
                data_dir=settings.data_dir,
                product_code=code,
            )
        except NotAMarketplaceLaunchError as exc:
            print(f"annotrain: first boot: {exc}", file=sys.stderr)
            return EXIT_NOT_MARKETPLACE
        except AnnotrainError as exc:
            print(f"annotrain: first boot failed: {exc}; it runs again at the next boot, or "
                  "now with 'systemctl restart annotrain-first-boot'", file=sys.stderr)  # fmt: skip
            return 1
    for note in result.notes:
        print(f"annotrain: first boot: {note}", file=sys.stderr)
    return 0


def payg_license_provisioner(settings: Settings, store: SqliteStore) -> PaygLicenseProvisioner:
    """The licensing service's PAYG license generator, over this lab's data folder.

    Generates, signs and stores the license bound to the instance, then writes
    ``DATA_DIR/instance.env`` (mode 0600) with ``ANNOTRAIN_INSTANCE_ID``, which the
    systemd units read so that the lab judges the license against this instance.
    """
    from annotrain.adapters.ed25519 import provision_payg_license

    def provision(request: PaygLicenseRequest) -> str:
        lic = provision_payg_license(
            settings, instance_id=request.instance_id, product_code=request.product_code
        )
        _write_private(
            settings.data_dir / INSTANCE_ENV_FILE, f"ANNOTRAIN_INSTANCE_ID={request.instance_id}\n"
        )
        return lic.id

    return provision


#: Written by first boot, read by the AMI's systemd units (EnvironmentFile=-…).
INSTANCE_ENV_FILE = "instance.env"


def enable_systemd_units(units: Sequence[str]) -> None:
    """``systemctl enable --now UNITS``; an AnnotrainError saying what failed otherwise.

    As the service user (the first-boot unit), through ``sudo -n``: install.sh allows
    that one command in /etc/sudoers.d/annotrain.
    """
    import shutil
    import subprocess

    from annotrain.domain.errors import AnnotrainError

    systemctl = shutil.which("systemctl")
    if systemctl is None:
        raise AnnotrainError(f"systemctl is not on PATH: cannot enable {', '.join(units)}")
    command = [systemctl, "enable", "--now", *units]
    if os.geteuid() != 0:
        command = ["sudo", "-n", *command]
    done = subprocess.run(  # noqa: S603 - fixed programs, unit names from our own constants
        command, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AnnotrainError(
            f"systemctl enable --now {' '.join(units)} failed ({done.returncode}): "
            f"{done.stderr.strip()}"
        )


def _backup_target(settings: Settings, location: str | None) -> tuple[Any, tuple[Path, ...]]:
    """The target a location names, and what of the data folder it makes no lab data."""
    from annotrain.adapters.backup_targets import backup_target_for, folders_kept_out

    target = backup_target_for(location or settings.backup_location)
    return target, folders_kept_out(target, settings.data_dir)


def _backup(args: argparse.Namespace) -> int:
    from annotrain.adapters.lab_lock import LabLock
    from annotrain.adapters.sqlite_backup import SqliteLabDatabase
    from annotrain.adapters.system_clock import SystemClock
    from annotrain.domain.errors import AnnotrainError, BackupInProgressError, LabBusyError
    from annotrain.services import backups

    settings = _settings(args.data_dir)
    target, exclude = _backup_target(settings, args.to)
    if args.list:
        listed = [_summary_json(b) for b in backups.list_backups(target)]
        json.dump(listed, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if args.keep is not None and args.keep < 1:
        raise _RefusedInputError("--keep: keep at least 1 backup")
    lock = LabLock(settings.data_dir)
    try:
        with lock.shared("back the lab up"), lock.only_backup():
            manifest = backups.create_backup(
                data_dir=settings.data_dir, database=SqliteLabDatabase(settings.database_path),
                target=target, clock=SystemClock(), exclude=exclude,
            )  # fmt: skip
            print(f"annotrain: backed up {len(manifest.files)} files, {manifest.total_bytes} "
                  f"bytes, as {manifest.name}", file=sys.stderr)  # fmt: skip
            if args.keep is not None:
                for name in backups.prune_backups(target, args.keep):
                    print(f"annotrain: deleted the backup {name} (keeping {args.keep})",
                          file=sys.stderr)  # fmt: skip
    except (LabBusyError, BackupInProgressError) as exc:
        raise _RefusedInputError(str(exc)) from None
    except AnnotrainError as exc:
        print(f"annotrain: the backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"{target.describe()}/{manifest.name}")
    return 0


def _summary_json(summary: Any) -> dict[str, Any]:
    from dataclasses import asdict

    document = asdict(summary)
    if summary.created_at is not None:
        document["created_at"] = summary.created_at.isoformat()
    return document


def _restore(args: argparse.Namespace) -> int:
    from annotrain.adapters.backup_targets import split_backup_location
    from annotrain.adapters.lab_lock import LabLock
    from annotrain.adapters.sqlite_backup import SqliteLabDatabase
    from annotrain.domain.errors import AnnotrainError, BackupRefusedError, LabBusyError
    from annotrain.services import backups

    settings = _settings(args.data_dir)
    location, name = split_backup_location(args.source)
    target, exclude = _backup_target(settings, location)
    try:
        with LabLock(settings.data_dir).exclusive("restore"):
            result = backups.restore_backup(
                target=target, name=name, data_dir=settings.data_dir,
                database=SqliteLabDatabase(settings.database_path), exclude=exclude,
                keep_previous=args.keep_previous,
            )  # fmt: skip
    except (LabBusyError, BackupRefusedError) as exc:
        raise _RefusedInputError(str(exc)) from None
    except AnnotrainError as exc:
        print(f"annotrain: the restore failed: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.manifest.counts.items()))
    print(f"annotrain: restored {name} ({len(result.manifest.files)} files; {counts}) into "
          f"{settings.data_dir}", file=sys.stderr)  # fmt: skip
    if result.previous is not None:
        print(f"annotrain: the replaced data is in {result.previous}", file=sys.stderr)
    return 0


def _transfer_store(settings: Settings) -> Any:
    """The lab the transfer reads or writes: SQLite here, or the serverless table."""
    from annotrain.settings import Mode

    if settings.mode == Mode.SERVERLESS:
        from annotrain.adapters.dynamodb import DynamoDbStore

        if not settings.table:
            raise _RefusedInputError("set ANNOTRAIN_TABLE to the serverless lab's table")
        return contextlib.nullcontext(
            DynamoDbStore(settings.table, overflow_bucket=settings.overflow_bucket)
        )
    return _open_store(settings)


def _project_export(args: argparse.Namespace) -> int:
    from annotrain.domain.errors import NotFoundError
    from annotrain.services.project_transfer import export_project

    settings = _settings(args.data_dir)
    with _transfer_store(settings) as store:
        try:
            store.get_project(args.project)
        except NotFoundError as exc:
            raise _RefusedInputError(str(exc)) from None
        with _output(args.to) as out:
            counts = export_project(store, args.project, out)
    print(f"annotrain: exported project {args.project} to {args.to}: {_counted(counts)}",
          file=sys.stderr)  # fmt: skip
    return 0


def _project_import(args: argparse.Namespace) -> int:
    from annotrain.adapters.system_clock import SystemClock
    from annotrain.services.project_transfer import import_project

    settings = _settings(args.data_dir)
    try:
        handle = args.input.open(encoding="utf-8")
    except OSError as exc:
        raise _RefusedInputError(f"cannot read {args.input}: {exc.strerror}") from None
    with handle, _transfer_store(settings) as store:
        counts = import_project(store, handle, SystemClock(), created_by=args.user, name=args.name)
    print(f"annotrain: imported {args.input} as project {counts.project_id}: "
          f"{_counted(counts)}", file=sys.stderr)  # fmt: skip
    print(counts.project_id)
    return 0


def _counted(counts: Any) -> str:
    return (
        f"{counts.tasks} tasks, {counts.completions} completions, {counts.reviews} reviews, "
        f"{counts.predictions} predictions, {counts.members} members"
    )


def _train(args: argparse.Namespace) -> int:
    from annotrain.services import trainings

    names = ("epochs", "learning_rate", "decay", "dropout", "batch_size", "max_length",
             "seed", "early_stopping_patience", "eval_steps", "max_steps")  # fmt: skip
    by_tags = args.train_tag is not None or args.test_tag is not None
    share = args.validation_share if args.validation_share is not None or by_tags else 0.2
    request = trainings.TrainingRequest(
        types=None if args.types is None else trainings.parse_types(_names(args.types)),
        params={n: getattr(args, n) for n in names if getattr(args, n) is not None},
        base_model=args.base_model,
        split=trainings.SplitRequest(share, args.train_tag, args.test_tag),
        tags=_names(args.tags),
        reviewed_only=args.reviewed_only,
        use_gpu=args.gpu,
        deploy=not args.no_deploy,
        classifiers=None if args.classifiers is None else _names(args.classifiers),
    )

    def start(lab: _LocalLab) -> str:
        from annotrain.services.system import NvidiaGpuProbe, gpu_usable

        run = trainings.start_training(
            lab.store, lab.blobs, lab.runner, lab.principal, lab.clock, args.project, request,
            gpu_available=gpu_usable(NvidiaGpuProbe(), lab.settings.use_gpu),
            licensing=lab.licensing,
        )  # fmt: skip
        return run.id

    return _run_and_wait(args, start)


def _preannotate(args: argparse.Namespace) -> int:
    from annotrain.services.preannotations import start_preannotation

    def start(lab: _LocalLab) -> str:
        task_ids = None
        if args.tasks is not None:
            try:
                task_ids = [int(t) for t in _names(args.tasks)]
            except ValueError:
                raise _RefusedInputError(f"--tasks: not task ids: {args.tasks!r}") from None
        run = start_preannotation(
            lab.store, lab.runner, lab.principal, lab.clock, args.project,
            task_ids=task_ids, model_names=None if args.models is None else _names(args.models),
            licensing=lab.licensing,
        )  # fmt: skip
        return run.id

    return _run_and_wait(args, start)


def _licenses_list(args: argparse.Namespace) -> int:
    from annotrain.adapters.ed25519 import licensing_from_settings
    from annotrain.adapters.system_clock import SystemClock
    from annotrain.services.access import Principal
    from annotrain.services.licenses import list_licenses

    settings = _settings(args.data_dir)
    with _open_store(settings) as store:
        listing = list_licenses(
            store, licensing_from_settings(settings), Principal("cli", is_admin=True),
            SystemClock(),
        )  # fmt: skip
    out = {
        "default": listing.grant.default,
        "scopes": sorted(s.value for s in listing.grant.scopes),
        "cost_banner": listing.grant.cost_banner,
        "items": [
            {
                "id": e.id,
                "type": None if e.license is None else e.license.type.value,
                "expires_at": None if e.license is None else e.license.expires_at.isoformat(),
                "in_force": e.in_force,
                "problem": e.problem,
            }
            for e in listing.items
        ],
    }
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def _licenses_generate_payg(args: argparse.Namespace) -> int:
    from annotrain.adapters.ed25519 import provision_payg_license

    settings = _settings(args.data_dir)
    lic = provision_payg_license(
        settings, instance_id=args.instance_id, product_code=args.product_code
    )
    print(f"annotrain: generated PAYG license {lic.id}, valid until "
          f"{lic.expires_at.isoformat()}", file=sys.stderr)  # fmt: skip
    return 0


def _licenses_renew(args: argparse.Namespace) -> int:
    from annotrain.adapters.ed25519 import renew_payg_license_of

    lic = renew_payg_license_of(_settings(args.data_dir))
    if lic is None:
        print("annotrain: the current PAYG license is good for longer; nothing to do",
              file=sys.stderr)  # fmt: skip
    else:
        print(f"annotrain: renewed: PAYG license {lic.id}, valid until "
              f"{lic.expires_at.isoformat()}", file=sys.stderr)  # fmt: skip
    return 0


def _metering_send(args: argparse.Namespace) -> int:
    import boto3  # type: ignore[import-untyped]

    from annotrain.adapters.ed25519 import licensing_from_settings
    from annotrain.adapters.marketplace_meter import MarketplaceUsageReporter
    from annotrain.adapters.system_clock import SystemClock
    from annotrain.services.metering import send_metering

    settings = _settings(args.data_dir)
    clock = SystemClock()
    with _open_store(settings) as store:
        payg = licensing_from_settings(settings).grant(store, clock.now()).payg
        if payg is None or payg.instance is None:
            raise _RefusedInputError(
                "no PAYG license is in force, so there is no Marketplace product code to "
                "meter under: this is not a Marketplace instance, or its license lapsed "
                "(annotrain licenses renew)"
            )
        client = boto3.client("meteringmarketplace", region_name=args.region)
        report = send_metering(
            store, MarketplaceUsageReporter(client), clock,
            product_code=payg.instance.product_code,
        )  # fmt: skip
    for name in ("sent", "retry_later", "rejected"):
        for entry in getattr(report, name):
            line = f"{name}: {entry.dimension} {entry.hour:%Y-%m-%dT%H:00Z} x{entry.quantity}"
            print(f"annotrain: {line} {entry.last_error or ''}".rstrip(), file=sys.stderr)
    return 1 if report.retry_later else 0


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (value or "").split(",") if n.strip())


class _LocalLab:
    """The store, blob folder, a local worker and the clock: what ``train`` and
    ``preannotate`` run a job with."""

    def __init__(self, settings: Settings, user: str) -> None:
        from annotrain.adapters.ed25519 import licensing_from_settings
        from annotrain.adapters.filesystem import FilesystemBlobStore
        from annotrain.adapters.local_runner import LocalJobRunner
        from annotrain.adapters.system_clock import SystemClock
        from annotrain.services.access import Principal

        self.settings = settings
        self.licensing = licensing_from_settings(settings)
        self.store = _open_store(settings)
        self.use_gpu = settings.use_gpu
        self.blobs = FilesystemBlobStore(settings.blob_dir)
        self.clock = SystemClock()
        self.principal = Principal(user, is_admin=True)
        self.runner = LocalJobRunner(
            self.store, log_dir=settings.data_dir / "logs", env=_job_env(settings)
        )


def _run_and_wait(args: argparse.Namespace, start: Any) -> int:
    """Start a run with a local worker beside any server, show its progress, exit by its end."""
    from annotrain.adapters.lab_lock import LabLock
    from annotrain.domain.errors import LabBusyError

    settings = _settings(args.data_dir)
    try:
        with LabLock(settings.data_dir).shared("run a job"):
            return _run_and_wait_locked(args, start, settings)
    except LabBusyError as exc:
        raise _RefusedInputError(str(exc)) from None


def _run_and_wait_locked(args: argparse.Namespace, start: Any, settings: Settings) -> int:
    import time

    from annotrain.domain.errors import JobRunnerUnavailableError, NotFoundError

    lab = _LocalLab(settings, args.user)
    # Beside a server on the same lab: serve only this job, take nothing of the server's.
    lab.runner.start(recover=False)
    try:
        try:
            run_id = start(lab)
        except (NotFoundError, JobRunnerUnavailableError) as exc:
            raise _RefusedInputError(str(exc)) from None
        print(f"annotrain: run {run_id} started", file=sys.stderr)
        try:
            while not (run := lab.store.get_run(run_id)).status.is_final:
                _show_progress(run)
                time.sleep(1.0)
        except KeyboardInterrupt:
            lab.runner.cancel(run_id)
            run = lab.store.get_run(run_id)
        _show_progress(run)
        sys.stderr.write("\n")
    finally:
        lab.runner.shutdown()
        lab.store.close()
    if run.status.value == "succeeded":
        json.dump({"id": run.id, "status": run.status.value, "metrics": dict(run.metrics)},
                  sys.stdout, indent=2, ensure_ascii=False)  # fmt: skip
        sys.stdout.write("\n")
        return 0
    print(f"annotrain: run {run.id} {run.status.value}: {run.failure_reason}", file=sys.stderr)
    return 1


def _show_progress(run: Any) -> None:
    """One line on stderr, rewritten in place: a bar, percent, epoch, loss."""
    width = 30
    done = int(width * min(max(run.progress, 0.0), 100.0) / 100)
    last = run.history[-1] if run.history else {}
    details = [f"{run.status.value}"]
    if run.epoch is not None:
        details.append(f"epoch {run.epoch}")
    if isinstance(last.get("loss"), int | float):
        details.append(f"loss {last['loss']:.4f}")
    bar = "#" * done + "." * (width - done)
    sys.stderr.write(f"\r[{bar}] {run.progress:5.1f}% {' '.join(details)}   ")
    sys.stderr.flush()


def _job_env(settings: Settings) -> dict[str, str]:
    """What a local job needs to find the lab: its database and its blob folder."""
    env = {
        "ANNOTRAIN_DB": str(settings.database_path.resolve()),
        "ANNOTRAIN_BLOB_DIR": str(settings.blob_dir.resolve()),
    }
    if not settings.use_gpu:
        # useGPU=false: the drivers stay, but the jobs see no GPU.
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def _event_loop_and_parser() -> tuple[Literal["uvloop", "asyncio"], Literal["httptools", "h11"]]:
    """uvloop and httptools when installed (the ``api`` extra pins both), else the stdlib's.

    Named rather than left to uvicorn's "auto", so that a missing package shows on
    stderr and not only in the throughput.
    """
    import importlib.util

    loop: Literal["uvloop", "asyncio"] = (
        "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    )
    http: Literal["httptools", "h11"] = (
        "httptools" if importlib.util.find_spec("httptools") else "h11"
    )
    print(f"annotrain: serving with the {loop} event loop and the {http} HTTP parser",
          file=sys.stderr)  # fmt: skip
    return loop, http


def _serving_app(
    settings: Settings,
    store: SqliteStore,
    demo: Path | None = None,
    *,
    runner: JobRunner | None = None,
) -> Any:
    """The app ``serve`` runs; on the first start, the first admin, its token file and,
    given ``demo``, a demo project made from that sample folder."""
    from annotrain.adapters.system_clock import SystemClock
    from annotrain.api import create_app
    from annotrain.services.users import create_first_admin

    clock = SystemClock()
    token_file = settings.data_dir / ADMIN_TOKEN_FILE
    first = create_first_admin(store, clock)
    if first is not None:
        name, token = first
        _write_private(token_file, token + "\n")
        # The token itself never reaches a log: only where it is.
        print(f"annotrain: created the first admin {name!r}; its API token is in {token_file}",
              file=sys.stderr)  # fmt: skip
        if demo is not None:
            from annotrain.services.access import Principal
            from annotrain.services.demo import seed_demo_project

            project = seed_demo_project(store, Principal(name, is_admin=True), clock, demo)
            if project is not None:
                print(f"annotrain: seeded the demo project {project.name!r} (id {project.id})",
                      file=sys.stderr)  # fmt: skip
    return create_app(settings=settings, store=store, clock=clock, runner=runner)


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (0600 from the start, never wider)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _print_errors(headline: str, errors: Sequence[object]) -> None:
    print(f"annotrain: {headline}:", file=sys.stderr)
    for error in errors:
        print(f"  - {error}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
