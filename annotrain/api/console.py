"""The web console: the built single-page front end, served beside the API.

The console (sources in ``web/``, built by ``make web`` into
``annotrain/web/static/``, committed) is static files that talk only to the public
HTTP API with a bearer token, so the same files work served from here, from the
API's Lambda functions or from S3 + CloudFront. This module serves them:

- ``GET /``: ``index.html``, never cached (it names the current assets), with a
  Content-Security-Policy that allows scripts and styles from this origin only;
- ``GET /assets/{name}``: the built, content-hashed files, cached for a year;
- ``GET /console/config.json``: how the console signs in here (an API token on a
  single node; a Cognito access token, serverless).

None of these is in the OpenAPI document: they are not the API.
"""

from __future__ import annotations

import functools
import mimetypes
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response

from annotrain.settings import Mode, Settings

#: Where the built console lives inside the package.
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".json": "application/json",
    ".map": "application/json",
}


@functools.cache
def _asset_names(folder: Path) -> frozenset[str]:
    """The files the build put in ``assets/`` (listed once: they never change in a process)."""
    assets = folder / "assets"
    if not assets.is_dir():
        return frozenset()
    return frozenset(p.name for p in assets.iterdir() if p.is_file())


def content_security_policy(settings: Settings) -> str:
    """Scripts and styles from this origin only, never inline; images also from
    ``blob:`` URLs (task images are fetched with the token and shown from memory);
    connections to this origin and, when the console signs in with Cognito, to its
    token endpoint."""
    connect = "'self'" + (f" {settings.cognito_domain}" if _cognito(settings) else "")
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def _cognito(settings: Settings) -> bool:
    return bool(settings.cognito_domain and settings.cognito_client_id)


def console_config(settings: Settings) -> dict[str, Any]:
    """What the console needs to know to sign in here.

    ``sign_in`` is ``cognito`` when the lab names its Cognito hosted-UI domain and
    app client (the console then signs in there: authorization code with PKCE, and
    sends the access token); else ``cognito_token`` on a serverless lab (an access
    token is pasted in), ``api_token`` on a single node (``annotrain users create``,
    or the admin's token file).
    """
    config: dict[str, Any] = {"mode": settings.mode.value, "api_base": "/api/v1"}
    if _cognito(settings):
        config["sign_in"] = "cognito"
        config["cognito"] = {
            "domain": settings.cognito_domain,
            "client_id": settings.cognito_client_id,
            "scopes": ["openid", "email", "profile"],
        }
    elif settings.mode is Mode.SERVERLESS:
        config["sign_in"] = "cognito_token"
    else:
        config["sign_in"] = "api_token"
    return config


def console_router(settings: Settings, static_dir: Path = STATIC_DIR) -> APIRouter:
    """The routes that serve the console (none in the OpenAPI document).

    Args:
        settings: The app's settings (the sign-in mode).
        static_dir: The built console (default: the package's).
    """
    router = APIRouter(include_in_schema=False)
    config = console_config(settings)
    page_headers = {
        **_SECURITY_HEADERS,
        "Content-Security-Policy": content_security_policy(settings),
        "Cache-Control": "no-cache",
    }

    @router.get("/")
    def console_index() -> Response:
        index = static_dir / "index.html"
        if not index.is_file():
            return JSONResponse(
                {"error": {"code": "not_found", "message": (
                    "the web console is not built here: run `make web` "
                    "(the API is at /api/v1, its documentation at /docs)")}},
                status_code=404,
            )  # fmt: skip
        return FileResponse(
            index,
            media_type="text/html; charset=utf-8",
            headers=page_headers,
        )

    @router.get("/assets/{name}")
    def console_asset(name: str) -> Response:
        # Only names the build wrote: nothing outside assets/ is ever reached.
        if not _ASSET_NAME.match(name) or name not in _asset_names(static_dir):
            return JSONResponse(
                {"error": {"code": "not_found", "message": f"no console asset {name!r}"}},
                status_code=404,
            )
        suffix = Path(name).suffix
        media_type = (
            _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        )
        return FileResponse(
            static_dir / "assets" / name,
            media_type=media_type,
            headers={
                **_SECURITY_HEADERS,
                # Names carry a hash of their content: a new build gets new names.
                "Cache-Control": "public, max-age=31536000, immutable",
            },
        )

    @router.get("/console/config.json")
    def console_settings() -> JSONResponse:
        return JSONResponse(config, headers={"Cache-Control": "no-cache"})

    return router


def install_console(app: FastAPI, settings: Settings) -> None:
    """Serve the console at ``/`` on the app, beside ``/api/v1``."""
    app.include_router(console_router(settings))
