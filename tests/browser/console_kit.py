"""What the browser tests share: Chromium's place and flags, the served lab, screenshots."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
INSTANCE_ID = "i-0b0c0n501e0000001"
PRODUCT_CODE = "console-test-product"


def need_chromium() -> None:
    if CHROMIUM.is_file():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing on CI: `make setup` as root installs chromium")
    pytest.skip(f"{CHROMIUM} is not installed (sudo apt-get install chromium chromium-driver)")


@dataclass(frozen=True)
class ServedLab:
    """A running ``annotrain serve``: its address, data folder and admin token."""

    url: str
    data_dir: Path
    token: str


def screenshot(page: Page, name: str) -> None:
    """Save the page at desktop width and at phone width under artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(100)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


class FakeHostedUi:
    """A stand-in for Cognito's hosted UI, enough for the console's sign-in.

    ``/oauth2/authorize`` checks the request (code flow, the client, S256), signs
    the user in at once and sends the browser back with a code and the state;
    ``/oauth2/token`` gives ``access_token`` only for that code, that redirect URI
    and a verifier whose SHA-256 is the challenge it was shown (RFC 7636), as
    Cognito does. What it saw is kept in ``exchanges`` for the test to read.
    """

    client_id = "console-test-client"

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.origin = f"http://127.0.0.1:{server.server_address[1]}"
        self.access_token = ""
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (challenge, redirect URI)
        self.exchanges: list[str] = []  # "ok" or why a token was refused

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[FakeHostedUi]:
        """Serve it in a thread until the block ends."""
        fake: FakeHostedUi | None = None

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                del format, args

            def do_GET(self) -> None:
                assert fake is not None
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query))
                if (
                    url.path != "/oauth2/authorize"
                    or query.get("response_type") != "code"
                    or (
                        query.get("client_id") != fake.client_id
                        or query.get("code_challenge_method") != "S256"
                    )
                ):
                    self.send_error(400, "not an authorization code request with PKCE")
                    return
                code = secrets.token_urlsafe(16)
                fake.codes[code] = (query["code_challenge"], query["redirect_uri"])
                back = (
                    f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
                )
                self.send_response(302)
                self.send_header("Location", back)
                self.end_headers()

            def do_POST(self) -> None:
                assert fake is not None
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode("ascii")))
                problem = fake.check_exchange(self.path, form)
                fake.exchanges.append(problem or "ok")
                body = (
                    {"error": "invalid_grant", "error_description": problem}
                    if problem
                    else {"access_token": fake.access_token, "token_type": "Bearer",
                          "expires_in": 3600}
                )  # fmt: skip
                data = json.dumps(body).encode()
                self.send_response(400 if problem else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        fake = cls(server)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield fake
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    def check_exchange(self, path: str, form: dict[str, str]) -> str | None:
        """Why the token request is refused, or None."""
        if path != "/oauth2/token" or form.get("grant_type") != "authorization_code":
            return "not an authorization code exchange"
        if form.get("client_id") != self.client_id:
            return "another client"
        issued = self.codes.pop(form.get("code", ""), None)
        if issued is None:
            return "unknown or used code"
        challenge, redirect_uri = issued
        if form.get("redirect_uri") != redirect_uri:
            return "another redirect URI"
        digest = hashlib.sha256(form.get("code_verifier", "").encode("ascii")).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") != challenge:
            return "the verifier does not match the challenge"
        return None
