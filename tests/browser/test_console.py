"""The web console in headless Chromium against a served lab: sign in, create a
project from a config, import tasks, train, watch the progress reach 100 %, read
the confusion matrix, and see the PAYG cost banner on every page.

One test walks the whole path, as a user would: each step needs the one before
(the project, its tasks, the trained model). The training is real: the lab's
runner starts ``python -m batch_jobs.train`` on the packaged MiniLM-L6 encoder for
one epoch over 60 short notes (the smallest model the lab ships; the job takes
no test-only shortcut).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from console_kit import FakeHostedUi, ServedLab, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

BANNER = "Continuous Server Usage Incurs Costs!"
CONFIG = """<View>
  <Labels name="label" toName="text">
    <Label value="Problem"/>
    <Label value="Drug"/>
    <Label value="Present" assertion="true"/>
    <Label value="Absent" assertion="true"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>"""
PROBLEMS = ["fever", "cough", "chest pain", "nausea", "headache", "rash", "fatigue", "dizziness"]
DRUGS = ["aspirin", "ibuprofen", "metformin", "heparin", "insulin", "warfarin", "morphine"]


def _note(i: int) -> dict[str, object]:
    """A note with a present and an absent problem and two drugs, each labelled (the lab
    asks 40 examples per label)."""
    p1, p2 = PROBLEMS[i % 8], PROBLEMS[(i + 3) % 8]
    d1, d2 = DRUGS[i % 7], DRUGS[(i + 2) % 7]
    text = f"Visit {i}: reports {p1}, denies {p2}; started {d1}, then {d2} at night."
    spans = (
        (p1, "Problem"), (p1, "Present"), (p2, "Problem"), (p2, "Absent"),
        (d1, "Drug"), (d2, "Drug"),
    )  # fmt: skip
    result = []
    for n, (word, label) in enumerate(spans):
        start = text.index(word, text.index(":"))
        result.append({
            "id": f"r{i}-{n}", "from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": start + len(word), "text": word, "labels": [label]},
        })  # fmt: skip
    return {"data": {"text": text}, "annotations": [{"result": result, "completed_by": "ann"}]}


def _tasks_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.json"
    path.write_text(json.dumps([_note(i) for i in range(60)]), encoding="utf-8")
    return path


def _sign_in(page: Page, lab: ServedLab) -> None:
    page.goto(lab.url + "/")
    page.get_by_label("API token").fill(lab.token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Projects", level=1).wait_for()


def test_a_wrong_token_is_refused_and_the_token_stays_out_of_urls_and_local_storage(
    page: Page, served_lab: ServedLab
) -> None:
    page.goto(served_lab.url + "/")
    screenshot(page, "signin")
    page.get_by_label("API token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "not_authenticated" in alert.inner_text()
    _sign_in(page, served_lab)
    assert served_lab.token not in page.url
    assert page.evaluate("() => Object.keys(localStorage).length") == 0
    assert page.evaluate("() => sessionStorage.getItem('annotrain.token')") == served_lab.token


def test_the_hosted_ui_sign_in_trades_a_code_and_its_verifier_for_the_token(
    page: Page, hosted_ui_lab: ServedLab, hosted_ui: FakeHostedUi
) -> None:
    page.goto(hosted_ui_lab.url + "/")
    button = page.get_by_role("button", name="Sign in with Cognito")
    button.wait_for()
    screenshot(page, "signin-cognito")
    button.click()
    page.get_by_role("heading", name="Projects", level=1).wait_for()
    assert hosted_ui.exchanges == ["ok"]  # the code, with a verifier matching its challenge
    assert "code=" not in page.url
    assert "state=" not in page.url
    token = page.evaluate("() => sessionStorage.getItem('annotrain.token')")
    assert token == hosted_ui_lab.token
    assert page.evaluate("() => sessionStorage.getItem('annotrain.pkce')") is None
    assert page.evaluate("() => Object.keys(localStorage).length") == 0


def test_a_code_that_comes_back_without_its_sign_in_is_refused(
    page: Page, hosted_ui_lab: ServedLab, hosted_ui: FakeHostedUi
) -> None:
    page.goto(f"{hosted_ui_lab.url}/?code=stolen&state=forged")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "state does not match" in alert.inner_text()
    assert "code=" not in page.url
    assert page.evaluate("() => sessionStorage.getItem('annotrain.token')") is None


def test_from_a_config_to_a_trained_model_under_the_cost_banner(
    page: Page, served_lab: ServedLab, tmp_path: Path
) -> None:
    _sign_in(page, served_lab)
    banner = page.get_by_test_id("cost-banner")
    assert BANNER in banner.inner_text()
    screenshot(page, "projects")

    # The config is checked by the API as it is typed: a broken one is refused with its issues.
    page.get_by_label("Name", exact=True).fill("Clinical notes")
    config = page.get_by_label("Labeling config (Label Studio XML)")
    config.fill("<View><Labels name='label' toName='text'><Label value='X'/></Labels></View>")
    assert "invalid_labeling_config" in page.get_by_role("alert").inner_text()
    config.fill(CONFIG)
    implied = page.get_by_test_id("implied-models")
    implied.wait_for()
    assert re.search(r"ner\s+ner: Problem, Drug", implied.inner_text())
    assert re.search(r"assertion\s+assertion: Present, Absent", implied.inner_text())
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("heading", name="Labeling config", level=2).wait_for()
    project_id = page.url.split("/projects/")[1].split("/")[0]
    screenshot(page, "project-config")

    # Import: a Label Studio JSON file of 60 completed notes.
    page.get_by_role("link", name="Import").click()
    page.get_by_label("Files", exact=True).set_input_files(str(_tasks_file(tmp_path)))
    page.get_by_role("button", name="Import", exact=True).click()
    assert "Imported 60 tasks" in page.get_by_test_id("import-result").inner_text()
    screenshot(page, "import")

    page.get_by_role("link", name="See the tasks").click()
    page.get_by_text("60 tasks").wait_for()
    page.get_by_label("Completions").select_option("false")
    page.get_by_text("0 tasks").wait_for()
    page.get_by_label("Completions").select_option("true")
    page.get_by_text("60 tasks").wait_for()
    screenshot(page, "tasks")
    page.get_by_role("link", name=re.compile(r"^#\d+$")).first.click()
    marks = page.get_by_test_id("highlighted-text").locator("mark")
    marks.first.wait_for()
    assert marks.count() == 4
    screenshot(page, "task")

    # Train one epoch, then watch the progress bar until the run is done.
    page.goto(f"{served_lab.url}/#/projects/{project_id}/train")
    # The assertion model alone: it has a confusion matrix (NER is scored per entity),
    # and one model keeps the suite short on a shared machine.
    page.get_by_role("checkbox", name="ner").uncheck()
    page.get_by_label("Epochs").fill("1")
    page.get_by_label("Batch size").fill("8")
    page.get_by_role("spinbutton", name=re.compile(r"^Test share")).fill("0.2")
    screenshot(page, "train-form")
    page.get_by_role("button", name="Start training").click()
    progress = page.get_by_test_id("run-progress-text")
    progress.wait_for()
    seen: list[float] = []
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        value = float(page.get_by_test_id("run-progress").get_attribute("value") or 0)
        if not seen or seen[-1] != value:
            seen.append(value)
            if len(seen) == 2:
                screenshot(page, "training-running")
        if "done" in progress.inner_text() or page.get_by_text("Failed:").count():
            break
        page.wait_for_timeout(300)
    assert "100 %" in progress.inner_text(), page.get_by_test_id("run-log").inner_text()[-2000:]
    assert seen == sorted(seen), seen  # it only moves forward
    assert seen[-1] == 100, seen
    assert "data:" in page.get_by_test_id("run-log").inner_text()  # the job's own log lines

    # The result: P/R/F1 per label, and the confusion matrix.
    per_label = page.get_by_test_id("per-label").inner_text()
    assert "Present" in per_label
    assert "Absent" in per_label
    page.get_by_text("Confusion matrix", exact=True).first.click()
    matrix = page.get_by_test_id("confusion-matrix").first
    matrix.wait_for()
    assert "true \\ predicted" in matrix.inner_text()
    assert "Absent" in matrix.inner_text()
    screenshot(page, "training-result")
    assert BANNER in banner.inner_text()

    # A second run, cancelled at once; then the two side by side.
    page.get_by_role("link", name=re.compile("Trainings of project")).click()
    page.get_by_label("Epochs").fill("2")
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("button", name="Cancel the training").click()
    page.get_by_text("cancelled", exact=True).first.wait_for()
    page.get_by_role("link", name=re.compile("Trainings of project")).click()
    history = page.get_by_test_id("history-table")
    history.get_by_role("checkbox").nth(0).check()
    history.get_by_role("checkbox").nth(1).check()
    page.get_by_role("link", name="Compare the two runs side by side").click()
    compared = page.get_by_test_id("compare-table")
    compared.wait_for()
    assert "cancelled" in compared.inner_text()
    assert "succeeded" in compared.inner_text()
    screenshot(page, "compare")

    for name, heading in (("Models", "Models"), ("Servers", "Servers"), ("License", "License")):
        page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
        page.get_by_role("heading", name=heading, level=1).wait_for()
        page.wait_for_load_state("networkidle")
        assert BANNER in banner.inner_text(), name
        screenshot(page, name.lower())
    assert "PAYG" in page.get_by_test_id("licenses-table").inner_text()
    page.get_by_role("link", name="Models").click()
    page.get_by_role("link", name=f"project{project_id}-assertion").click()
    page.get_by_role("heading", name="Version 1").wait_for()
    # A lab admin may download and deploy any model.
    page.get_by_role("button", name="Download v1 (zip)").wait_for()
    deploy = f"Deploy project{project_id}-assertion v1 into project {project_id}"
    assert page.get_by_role("button", name=deploy).is_visible()
    screenshot(page, "model")


def _new_user(lab: ServedLab, name: str) -> ServedLab:
    """A lab user (not an admin) made with the CLI, as the lab seen with their token."""
    created = subprocess.run(
        [sys.executable, "-m", "annotrain.cli", "users", "create", name, "--role", "user",
         "--data-dir", str(lab.data_dir)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return ServedLab(lab.url, lab.data_dir, created.stdout.strip().splitlines()[-1])


def test_an_annotator_is_not_offered_what_their_role_cannot_do_and_an_owner_is(
    page: Page, served_lab: ServedLab
) -> None:
    owner, annotator = _new_user(served_lab, "olga"), _new_user(served_lab, "ann")
    project = _api(owner, "POST", "/projects", {"name": "Shared", "labeling_config": CONFIG})
    _api(owner, "PUT", f"/projects/{project['id']}/members", {"user": "ann", "role": "Annotator"})
    refused: list[str] = []
    page.on(
        "response",
        lambda answer: (
            refused.append(f"{answer.status} {answer.url}") if answer.status in (403, 404) else None
        ),
    )
    at = f"{served_lab.url}/#/projects/{project['id']}"

    _sign_in(page, annotator)
    assert "ann" in page.get_by_test_id("signed-in-as").inner_text()
    page.goto(at + "/train")
    note = page.get_by_test_id("train-role-note")
    assert note.inner_text() == (
        "Starting a training takes the Owner or Manager role; you are an Annotator."
    )
    page.get_by_role("heading", name="History").wait_for()
    assert page.get_by_role("button", name="Start training").count() == 0
    assert page.get_by_label("Epochs").count() == 0
    screenshot(page, "train-annotator")
    page.goto(at + "/config")
    assert page.get_by_test_id("config-role-note").inner_text() == (
        "Changing the labeling config takes the Owner or Manager role; you are an Annotator."
    )
    assert '<Label value="Drug"/>' in page.get_by_test_id("config-text").inner_text()
    assert page.get_by_label("Labeling config (Label Studio XML)").count() == 0
    assert page.get_by_role("button", name="Save config").count() == 0
    assert page.get_by_test_id("my-role").inner_text() == "your role: Annotator"
    screenshot(page, "config-annotator")
    page.get_by_role("link", name="Import").click()
    page.get_by_test_id("import-role-note").wait_for()
    assert page.get_by_label("Files", exact=True).count() == 0
    page.get_by_role("link", name="License").click()
    page.get_by_text("Only lab admins see the license documents").wait_for()
    # The console asked for nothing the annotator may not have: no 403, no 404.
    assert refused == []

    page.get_by_role("button", name="Sign out").click()
    _sign_in(page, owner)
    page.goto(at + "/train")
    page.get_by_role("button", name="Start training").wait_for()
    assert page.get_by_label("Epochs").is_visible()
    assert page.get_by_test_id("train-role-note").count() == 0
    page.goto(at + "/config")
    page.get_by_role("button", name="Save config").wait_for()
    assert page.get_by_label("Labeling config (Label Studio XML)").is_editable()
    assert page.get_by_test_id("config-role-note").count() == 0
    assert page.get_by_test_id("my-role").inner_text() == "your role: Owner"
    assert refused == []


def test_the_banner_goes_when_no_payg_license_is_in_force(
    page: Page, served_lab: ServedLab
) -> None:
    _sign_in(page, served_lab)
    assert BANNER in page.get_by_test_id("cost-banner").inner_text()
    licenses = _api(served_lab, "GET", "/licenses")["items"]
    for lic in licenses:
        _api(served_lab, "DELETE", f"/licenses/{lic['id']}")
    page.get_by_role("link", name="License").click()
    page.get_by_role("heading", name="License", level=1).wait_for()
    page.get_by_test_id("cost-banner").wait_for(state="detached")
    screenshot(page, "license-without-payg")


def _api(lab: ServedLab, method: str, path: str, body: object = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {lab.token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(
        f"{lab.url}/api/v1{path}", data=data, method=method, headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        body = answer.read()
    return json.loads(body) if body else {}
