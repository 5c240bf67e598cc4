"""The web console's static files served by the app: what ``/`` answers, the assets,
the sign-in config, and that the committed build is whole."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from licensing_kit import single_node_licensing

from annotrain.api.app import create_app
from annotrain.api.console import STATIC_DIR, console_config
from annotrain.settings import Mode, Settings


def _client(tmp_path: Path, **changes: object) -> TestClient:
    settings = Settings(data_dir=tmp_path, **changes)  # type: ignore[arg-type]
    return TestClient(create_app(settings=settings, licensing=single_node_licensing()))


def _asset_paths(index: str) -> list[str]:
    return re.findall(r'(?:src|href)="\./(assets/[^"]+)"', index)


def test_the_committed_build_names_only_files_it_holds() -> None:
    index = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assets = _asset_paths(index)
    assert any(a.endswith(".js") for a in assets)
    assert any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert (STATIC_DIR / asset).is_file(), f"{asset} is named by index.html but not built"
    # No inline script: the Content-Security-Policy allows none.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", index)


def test_the_committed_build_is_what_the_sources_build(tmp_path: Path) -> None:
    web = Path(__file__).resolve().parents[2] / "web"
    vite = web / "node_modules" / ".bin" / "vite"
    if not vite.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("web/node_modules is missing on CI: `make setup` installs it")
        pytest.skip("web/node_modules is missing: `make setup` (or `make web`) installs it")
    out = tmp_path / "static"
    subprocess.run(
        [str(vite), "build", "--outDir", str(out), "--emptyOutDir", "--logLevel", "error"],
        cwd=web, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    built = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(STATIC_DIR): p.read_bytes() for p in STATIC_DIR.rglob("*") if p.is_file()
    }
    assert sorted(built) == sorted(committed), "run `make web` and commit annotrain/web/static/"
    assert built == committed, "run `make web` and commit annotrain/web/static/"


def test_index_is_served_uncached_with_a_strict_policy(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<div id="app">' in response.text


def test_hashed_assets_are_served_with_their_types_and_cached_for_long(tmp_path: Path) -> None:
    index = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    with _client(tmp_path) as client:
        for asset in _asset_paths(index):
            response = client.get("/" + asset)
            assert response.status_code == 200, asset
            expected = "text/javascript" if asset.endswith(".js") else "text/css"
            assert response.headers["content-type"].startswith(expected)
            assert "immutable" in response.headers["cache-control"]
            assert response.content == (STATIC_DIR / asset).read_bytes()


def test_only_built_assets_are_reachable(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        for path in ("/assets/nope.js", "/assets/..%2Findex.html", "/assets/.hidden"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"


def test_the_api_is_not_shadowed_and_the_console_is_not_in_the_openapi_document(
    tmp_path: Path,
) -> None:
    with _client(tmp_path) as client:
        assert client.get("/api/v1/system").status_code == 401
        assert client.get("/health").json() == {"status": "ok"}
        paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if not p.startswith(("/api/", "/health"))]


def test_the_config_says_how_to_sign_in(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        answer = client.get("/console/config.json").json()
    assert answer == {"mode": "single_node", "api_base": "/api/v1", "sign_in": "api_token"}
    serverless = console_config(Settings(mode=Mode.SERVERLESS))
    assert serverless["sign_in"] == "cognito_token"


def test_with_a_hosted_ui_the_console_signs_in_there_and_may_reach_its_token_endpoint(
    tmp_path: Path,
) -> None:
    domain = "https://lab-7.auth.eu-west-1.amazoncognito.com"
    with _client(tmp_path, cognito_domain=domain + "/", cognito_client_id="abc123") as client:
        config = client.get("/console/config.json").json()
        policy = client.get("/").headers["content-security-policy"]
    assert config["sign_in"] == "cognito"
    assert config["cognito"] == {
        "domain": domain, "client_id": "abc123", "scopes": ["openid", "email", "profile"],
    }  # fmt: skip
    assert f"connect-src 'self' {domain};" in policy


@pytest.mark.parametrize(
    "domain",
    ["http://lab.auth.eu-west-1.amazoncognito.com", "https://x.example/oauth2", "lab-7", "ftp://x"],
)
def test_a_hosted_ui_domain_must_be_an_https_origin(domain: str) -> None:
    with pytest.raises(ValueError, match="ANNOTRAIN_COGNITO_DOMAIN"):
        Settings(cognito_domain=domain)
