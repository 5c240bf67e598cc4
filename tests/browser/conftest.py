"""The served lab and a headless Chromium for the web console's browser tests.

The lab is the real one: ``annotrain serve`` in a subprocess on a free port over a
temporary data folder, its local job runner launching ``python -m batch_jobs.train``.
Its license is a PAYG license generated for a made-up instance (as first boot does
on a Marketplace instance), so the cost banner is in force.

Chromium is Debian's (``/usr/bin/chromium``; ``make setup`` installs it as root),
driven by Playwright for Python; Playwright's own browsers are never downloaded.
Without it the tests are skipped, except under CI (``CI=true``), where its absence
fails them. Screenshots go to ``artifacts/screenshots/`` (desktop 1280 px and phone
390 px wide).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from console_kit import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    INSTANCE_ID,
    PRODUCT_CODE,
    FakeHostedUi,
    ServedLab,
    need_chromium,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"annotrain serve exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"annotrain serve did not answer in 60 s: {log.read_text()[-3000:]}")


ANNOTRAIN = [sys.executable, "-m", "annotrain.cli"]


def _lab_env(**settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "ANNOTRAIN_LICENSE_CACHE_SECONDS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **settings,
    }


@contextlib.contextmanager
def _serve(data_dir: Path, env: dict[str, str]) -> Iterator[ServedLab]:
    port = _free_port()
    log = data_dir.parent / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*ANNOTRAIN, "serve", "--port", str(port), "--data-dir", str(data_dir)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log)
        token = (data_dir / "admin-token").read_text(encoding="utf-8").strip()
        yield ServedLab(url, data_dir, token)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _new_data_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    data_dir = tmp_path_factory.mktemp(name) / "lab"
    data_dir.mkdir(mode=0o700)
    return data_dir


@pytest.fixture(scope="module")
def served_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedLab]:
    """``annotrain serve`` on a free port, under a PAYG license, with a fresh admin."""
    need_chromium()
    data_dir = _new_data_dir(tmp_path_factory, "console-lab")
    env = _lab_env(ANNOTRAIN_INSTANCE_ID=INSTANCE_ID)
    subprocess.run(
        [*ANNOTRAIN, "licenses", "generate-payg", "--instance-id", INSTANCE_ID,
         "--product-code", PRODUCT_CODE, "--data-dir", str(data_dir)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    with _serve(data_dir, env) as lab:
        yield lab


@pytest.fixture(scope="module")
def hosted_ui() -> Iterator[FakeHostedUi]:
    """A stand-in for Cognito's hosted UI on a free port (see FakeHostedUi)."""
    need_chromium()
    with FakeHostedUi.running() as fake:
        yield fake


@pytest.fixture(scope="module")
def hosted_ui_lab(
    tmp_path_factory: pytest.TempPathFactory, hosted_ui: FakeHostedUi
) -> Iterator[ServedLab]:
    """A lab whose console signs in at ``hosted_ui``, which hands out its admin's token."""
    data_dir = _new_data_dir(tmp_path_factory, "hosted-ui-lab")
    env = _lab_env(
        ANNOTRAIN_COGNITO_DOMAIN=hosted_ui.origin, ANNOTRAIN_COGNITO_CLIENT_ID=hosted_ui.client_id
    )
    with _serve(data_dir, env) as lab:
        hosted_ui.access_token = lab.token
        yield lab


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless.

    Module-scoped, not session-scoped: Playwright's sync API keeps its event loop
    running while it is open, and later tests that run their own loop would fail.
    """
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (its own sessionStorage) at desktop width."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    try:
        yield page
    finally:
        context.close()
    # Failed fetches the tests cause on purpose are logged as "Failed to load resource".
    unexpected = [e for e in errors if "Failed to load resource" not in e]
    assert not unexpected, f"the console logged errors: {unexpected}"
