"""The Marketplace AMI's pieces: Image Builder component documents, installer, systemd units.

The documents are checked against Image Builder's component schema as far as it is
plain data (keys, phases, step actions); the AmiStack test checks the pipelines take them.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AMI = ROOT / "marketplace_ami"
COMPONENTS = sorted((AMI / "components").glob("*.yml"))
INSTALL = AMI / "install.sh"
UNITS = AMI / "systemd"
ANNOTRAIN = "/opt/annotrain/venv/bin/annotrain"
# Image Builder's step actions these documents may use.
ACTIONS = {"ExecuteBash", "S3Download", "Reboot"}


def _document(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def _phase(document: dict[str, Any], name: str) -> list[dict[str, Any]]:
    phases = {p["name"]: p["steps"] for p in document["phases"]}
    return phases[name]


def _commands(steps: list[dict[str, Any]]) -> str:
    return "\n".join(
        "\n".join(s["inputs"]["commands"]) for s in steps if s["action"] == "ExecuteBash"
    )


def test_there_is_a_cpu_and_a_gpu_component() -> None:
    assert [p.stem for p in COMPONENTS] == ["annotrain-cpu", "annotrain-gpu"]


@pytest.mark.parametrize("path", COMPONENTS, ids=lambda p: p.stem)
def test_component_follows_the_image_builder_schema(path: Path) -> None:
    document = _document(path)
    assert set(document) <= {"name", "description", "schemaVersion", "parameters", "phases"}
    assert document["name"] == path.stem
    assert document["description"]
    assert document["schemaVersion"] == 1.0
    assert [p["name"] for p in document["phases"]] == ["build", "validate", "test"]
    for phase in document["phases"]:
        names = [step["name"] for step in phase["steps"]]
        assert len(names) == len(set(names)), phase["name"]
        for step in phase["steps"]:
            assert step["action"] in ACTIONS, step["name"]
            assert step["name"].isalnum(), step["name"]
            assert "inputs" in step
    declared = {next(iter(p)) for p in document["parameters"]}
    assert declared == {"SourceUri", "ProductCode"}
    text = path.read_text()
    for used in ("{{ SourceUri }}", "{{ ProductCode }}"):
        assert used in text


@pytest.mark.parametrize(("stem", "flag"), [("annotrain-cpu", ""), ("annotrain-gpu", " gpu")])
def test_the_build_runs_the_installer_with_the_flavours_flag(stem: str, flag: str) -> None:
    document = _document(AMI / "components" / f"{stem}.yml")
    build = _phase(document, "build")
    download = next(s for s in build if s["action"] == "S3Download")
    assert download["inputs"][0]["source"] == "{{ SourceUri }}"
    installs = [line for line in _commands(build).splitlines() if "install.sh" in line]
    assert len(installs) == 1
    assert installs[0].endswith(f"marketplace_ami/install.sh{flag}")
    use_gpu = "true" if flag else "false"
    assert f"ANNOTRAIN_USE_GPU={use_gpu}" in _commands(_phase(document, "validate"))


@pytest.mark.parametrize("path", COMPONENTS, ids=lambda p: p.stem)
def test_the_test_phase_waits_for_the_api_health(path: Path) -> None:
    commands = _commands(_phase(_document(path), "test"))
    assert "curl -fsS http://127.0.0.1:8080/health" in commands
    assert "exit 1" in commands  # and fails when it never answers


def test_the_gpu_image_is_tested_with_torch_seeing_the_gpu() -> None:
    commands = _commands(_phase(_document(AMI / "components" / "annotrain-gpu.yml"), "test"))
    assert "torch.cuda.is_available()" in commands


def test_the_validate_phase_checks_the_image_carries_no_lab_data() -> None:
    for path in COMPONENTS:
        assert 'test -z "$(ls -A /var/lib/annotrain)"' in _commands(
            _phase(_document(path), "validate")
        )


def test_installer_is_valid_bash_and_strict() -> None:
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)
    assert "set -euo pipefail" in INSTALL.read_text()
    assert os.access(INSTALL, os.X_OK)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_installer_is_shellcheck_clean() -> None:
    subprocess.run(["shellcheck", str(INSTALL)], check=True)


@pytest.mark.parametrize(
    ("args", "expected"),
    [([], "flavour=cpu use_gpu=false"), (["cpu"], "flavour=cpu use_gpu=false"),
     (["gpu"], "flavour=gpu use_gpu=true"), (["GPU"], "flavour=gpu use_gpu=true"),
     (["Gpu"], "flavour=gpu use_gpu=true")],
)  # fmt: skip
def test_installer_flag_is_case_insensitive(args: list[str], expected: str) -> None:
    done = subprocess.run(
        ["bash", str(INSTALL), *args], capture_output=True, text=True, check=True,
        env={**os.environ, "ANNOTRAIN_INSTALL_DRY_RUN": "1"},
    )  # fmt: skip
    assert done.stdout.strip() == expected


@pytest.mark.parametrize("args", [["tpu"], ["gpu", "extra"]])
def test_installer_refuses_unknown_arguments(args: list[str]) -> None:
    done = subprocess.run(
        ["bash", str(INSTALL), *args], capture_output=True, text=True, check=False,
        env={**os.environ, "ANNOTRAIN_INSTALL_DRY_RUN": "1"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "usage" in done.stderr


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def test_the_api_starts_after_first_boot_even_when_first_boot_fails() -> None:
    api = _unit("annotrain-api.service")
    assert "annotrain-first-boot.service" in api["Unit"]["After"]
    assert "annotrain-first-boot.service" in api["Unit"]["Wants"]
    assert "Requires" not in api["Unit"]
    assert api["Service"]["ExecStart"] == f"{ANNOTRAIN} serve --host 0.0.0.0 --port 8080"
    assert api["Service"]["User"] == "annotrain"
    first = _unit("annotrain-first-boot.service")
    assert first["Service"]["Type"] == "oneshot"
    assert first["Service"]["ExecStart"] == f"{ANNOTRAIN} first-boot"
    assert "annotrain-api.service" in first["Unit"]["Before"]


@pytest.mark.parametrize(
    ("service", "command", "calendar"),
    [("annotrain-backup", "backup --keep ${ANNOTRAIN_BACKUP_KEEP}", "daily"),
     ("annotrain-license-renew", "licenses renew", "hourly"),
     ("annotrain-metering", "metering send", "hourly")],
)  # fmt: skip
def test_each_timer_runs_its_command(service: str, command: str, calendar: str) -> None:
    unit = _unit(f"{service}.service")
    assert unit["Service"]["Type"] == "oneshot"
    assert unit["Service"]["ExecStart"] == f"{ANNOTRAIN} {command}"
    environment_files = [
        line.split("=", 1)[1]
        for line in (UNITS / f"{service}.service").read_text().splitlines()
        if line.startswith("EnvironmentFile=")
    ]
    # The settings, then what first boot writes (the instance the license is bound to).
    assert environment_files == ["/etc/annotrain/annotrain.env", "-/var/lib/annotrain/instance.env"]
    timer = _unit(f"{service}.timer")
    assert timer["Timer"]["OnCalendar"] == calendar
    assert timer["Timer"]["Persistent"] == "true"


def test_first_boot_enables_the_timers_the_sudo_rule_allows() -> None:
    from annotrain.services.first_boot import TIMERS_ENABLED_AT_FIRST_BOOT

    text = INSTALL.read_text()
    assert "enable --now %s %s" in text
    assert " ".join(TIMERS_ENABLED_AT_FIRST_BOOT) in text.replace(" \\\n  ", " ")
    for timer in TIMERS_ENABLED_AT_FIRST_BOOT:
        assert (UNITS / timer).is_file()


def test_each_pipeline_takes_its_flavours_component_with_the_sources(synthesis: Any) -> None:
    template = synthesis.templates["AnnotrainAmi"]
    resources = template["Resources"]
    components = {
        logical: r["Properties"]["Name"]
        for logical, r in resources.items()
        if r["Type"] == "AWS::ImageBuilder::Component"
    }
    assert sorted(name.split("-")[1:3] for name in components.values()) == [
        ["annotrain", "cpu"], ["annotrain", "gpu"]
    ]  # fmt: skip
    recipes = [r for r in resources.values() if r["Type"] == "AWS::ImageBuilder::ImageRecipe"]
    assert len(recipes) == 2
    for recipe in recipes:
        flavour = "gpu" if "deeplearning" in recipe["Properties"]["ParentImage"] else "cpu"
        ours = [c for c in recipe["Properties"]["Components"] if "Parameters" in c]
        assert len(ours) == 1
        logical = ours[0]["ComponentArn"]["Fn::GetAtt"][0]
        assert f"annotrain-{flavour}" in components[logical]
        parameters = {p["Name"]: p["Value"] for p in ours[0]["Parameters"]}
        assert set(parameters) == {"SourceUri", "ProductCode"}
        assert "s3://" in str(parameters["SourceUri"])
