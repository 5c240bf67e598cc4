"""First boot against a local fake of IMDSv2: with and without a Marketplace product code."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from annotrain import cli
from annotrain.adapters.imds import Imdsv2Metadata, InstanceMetadataUnavailableError
from annotrain.adapters.sqlite import SqliteStore
from annotrain.domain.errors import AnnotrainError
from annotrain.domain.records import UserRole
from annotrain.services.first_boot import (
    FIRST_BOOT_MARKER,
    TIMERS_ENABLED_AT_FIRST_BOOT,
    FirstBootOutcome,
    NotAMarketplaceLaunchError,
    PaygLicenseRequest,
    run_first_boot,
)
from annotrain.services.users import hash_token

INSTANCE_ID = "i-0123456789abcdef0"
PRODUCT_CODE = "8fb8a0vvbcc1pmw2ixypd20fs"
SESSION_TOKEN = "AQAEAFake-session-token=="


class FixedClock:
    def now(self) -> datetime:
        return datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeImds:
    """What the fake answers, and what it was asked."""

    product_codes: list[str] = field(default_factory=list)
    requests: list[tuple[str, str, bool]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    state = FakeImds()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

        def _answer(self, code: int, body: str = "") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            state.requests.append(("PUT", self.path, False))
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if self.path != "/latest/api/token" or not ttl:
                self._answer(400)
            else:
                self._answer(200, SESSION_TOKEN)

        def do_GET(self) -> None:
            authorized = self.headers.get("X-aws-ec2-metadata-token") == SESSION_TOKEN
            state.requests.append(("GET", self.path, authorized))
            if not authorized:  # IMDSv2 only: IMDSv1 reads are refused
                self._answer(401)
            elif self.path == "/latest/dynamic/instance-identity/document":
                document = {
                    "instanceId": INSTANCE_ID,
                    "region": "eu-west-1",
                    "accountId": "123456789012",
                    "instanceType": "g4dn.xlarge",
                    "imageId": "ami-0abc",
                }
                self._answer(200, json.dumps(document))
            elif self.path == "/latest/meta-data/product-codes" and state.product_codes:
                self._answer(200, "\n".join(state.product_codes))
            else:
                self._answer(404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Provisioner:
    requests: list[PaygLicenseRequest] = field(default_factory=list)

    def __call__(self, request: PaygLicenseRequest) -> str:
        self.requests.append(request)
        return f"payg-{len(self.requests)}"


@dataclass
class Units:
    enabled: list[tuple[str, ...]] = field(default_factory=list)

    def __call__(self, units: Sequence[str]) -> None:
        self.enabled.append(tuple(units))


def _boot(imds: FakeImds, store: SqliteStore, tmp_path: Path, provisioner: Provisioner,
          units: Units, product_code: str = PRODUCT_CODE):  # type: ignore[no-untyped-def]  # fmt: skip
    return run_first_boot(
        metadata=Imdsv2Metadata(imds.url, attempts=1),
        users=store,
        clock=FixedClock(),
        provision_license=provisioner,
        enable_units=units,
        data_dir=tmp_path,
        product_code=product_code,
    )


def test_first_boot_of_a_marketplace_launch_provisions_license_admin_and_timers(
    imds: FakeImds, tmp_path: Path
) -> None:
    imds.product_codes = [PRODUCT_CODE]
    provisioner, units = Provisioner(), Units()
    with SqliteStore(tmp_path / "annotrain.db") as store:
        result = _boot(imds, store, tmp_path, provisioner, units)

        assert result.outcome is FirstBootOutcome.PROVISIONED
        assert result.license_id == "payg-1"
        assert provisioner.requests == [
            PaygLicenseRequest(INSTANCE_ID, PRODUCT_CODE, "eu-west-1", "123456789012")
        ]
        admin = store.get_user("admin")
        assert admin.role is UserRole.ADMIN
        token = store.find_token(hash_token(INSTANCE_ID))
        assert token is not None
        assert token.user == "admin"
        assert units.enabled == [TIMERS_ENABLED_AT_FIRST_BOOT]
    # Every read carried the session token (IMDSv2), after one PUT for it.
    assert imds.requests[0] == ("PUT", "/latest/api/token", False)
    assert all(authorized for method, _, authorized in imds.requests if method == "GET")
    # The instance id (the admin's token) is stored nowhere in clear, nor said.
    marker = (tmp_path / FIRST_BOOT_MARKER).read_text()
    assert INSTANCE_ID not in marker
    assert INSTANCE_ID not in "\n".join(result.notes)
    assert INSTANCE_ID.encode() not in (tmp_path / "annotrain.db").read_bytes()


def test_a_second_boot_of_the_same_instance_does_nothing(imds: FakeImds, tmp_path: Path) -> None:
    imds.product_codes = [PRODUCT_CODE]
    provisioner, units = Provisioner(), Units()
    with SqliteStore(tmp_path / "annotrain.db") as store:
        _boot(imds, store, tmp_path, provisioner, units)
        again = _boot(imds, store, tmp_path, provisioner, units)
        assert again.outcome is FirstBootOutcome.ALREADY_DONE
        assert len(provisioner.requests) == 1
        assert len(units.enabled) == 1
        assert len(store.list_users().items) == 1


def test_without_a_product_code_no_license_no_admin_no_marker(
    imds: FakeImds, tmp_path: Path
) -> None:
    provisioner, units = Provisioner(), Units()
    with SqliteStore(tmp_path / "annotrain.db") as store:
        with pytest.raises(NotAMarketplaceLaunchError, match="not launched from the Marketplace"):
            _boot(imds, store, tmp_path, provisioner, units)
        assert provisioner.requests == []
        assert units.enabled == []
        assert store.list_users().items == []
    assert not (tmp_path / FIRST_BOOT_MARKER).exists()


def test_another_products_code_is_refused(imds: FakeImds, tmp_path: Path) -> None:
    imds.product_codes = ["someoneelsesproduct"]
    provisioner = Provisioner()
    with (
        SqliteStore(tmp_path / "annotrain.db") as store,
        pytest.raises(NotAMarketplaceLaunchError, match="someoneelsesproduct"),
    ):
        _boot(imds, store, tmp_path, provisioner, Units())
    assert provisioner.requests == []


def test_without_a_configured_product_code_nothing_is_generated(
    imds: FakeImds, tmp_path: Path
) -> None:
    imds.product_codes = [PRODUCT_CODE]
    provisioner = Provisioner()
    with (
        SqliteStore(tmp_path / "annotrain.db") as store,
        pytest.raises(NotAMarketplaceLaunchError, match="ANNOTRAIN_MARKETPLACE_PRODUCT_CODE"),
    ):
        _boot(imds, store, tmp_path, provisioner, Units(), product_code="")
    assert provisioner.requests == []


def test_a_lab_restored_from_another_instance_gets_a_license_for_this_one(
    imds: FakeImds, tmp_path: Path
) -> None:
    imds.product_codes = [PRODUCT_CODE]
    (tmp_path / FIRST_BOOT_MARKER).write_text(
        json.dumps({"format": "annotrain-first-boot/1", "instance": "sha256:other"})
    )
    provisioner = Provisioner()
    with SqliteStore(tmp_path / "annotrain.db") as store:
        cli.main(["users", "create", "kept", "--role", "admin", "--data-dir", str(tmp_path)])
        result = _boot(imds, store, tmp_path, provisioner, Units())
        assert result.outcome is FirstBootOutcome.PROVISIONED
        assert not result.admin_created
        assert store.find_token(hash_token(INSTANCE_ID)) is None  # tokens unchanged
    assert len(provisioner.requests) == 1


def test_a_failing_license_service_leaves_first_boot_to_run_again(
    imds: FakeImds, tmp_path: Path
) -> None:
    imds.product_codes = [PRODUCT_CODE]

    def failing(request: PaygLicenseRequest) -> str:
        raise AnnotrainError("signing key unavailable")

    with SqliteStore(tmp_path / "annotrain.db") as store:
        with pytest.raises(AnnotrainError, match="signing key"):
            run_first_boot(
                metadata=Imdsv2Metadata(imds.url, attempts=1), users=store, clock=FixedClock(),
                provision_license=failing, enable_units=Units(), data_dir=tmp_path,
                product_code=PRODUCT_CODE,
            )  # fmt: skip
        assert store.list_users().items == []
    assert not (tmp_path / FIRST_BOOT_MARKER).exists()


def test_imds_that_does_not_answer_is_retried_then_reported() -> None:
    waits: list[float] = []
    # Port 9 on localhost: nothing listens, the connection is refused at once.
    metadata = Imdsv2Metadata("http://127.0.0.1:9", attempts=3, timeout_s=0.5, sleep=waits.append)
    with pytest.raises(InstanceMetadataUnavailableError, match="did not answer after 3 tries"):
        metadata.identity()
    assert waits == [1.0, 2.0]


def test_cli_exits_3_and_says_why_without_a_product_code(
    imds: FakeImds, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    provisioner = Provisioner()
    monkeypatch.setattr(cli, "payg_license_provisioner", lambda settings, store: provisioner)
    code = cli.main(["first-boot", "--imds-endpoint", imds.url, "--product-code", PRODUCT_CODE,
                     "--no-systemctl", "--data-dir", str(tmp_path)])  # fmt: skip
    assert code == cli.EXIT_NOT_MARKETPLACE
    assert "refusing to generate a PAYG license" in capsys.readouterr().err
    assert provisioner.requests == []


def test_cli_provisions_and_never_prints_the_instance_id(
    imds: FakeImds, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    imds.product_codes = [PRODUCT_CODE]
    provisioner = Provisioner()
    monkeypatch.setattr(cli, "payg_license_provisioner", lambda settings, store: provisioner)
    args = ["first-boot", "--imds-endpoint", imds.url, "--product-code", PRODUCT_CODE,
            "--no-systemctl", "--data-dir", str(tmp_path)]  # fmt: skip
    assert cli.main(args) == 0
    assert cli.main(args) == 0  # the second boot: nothing to do
    out = capsys.readouterr()
    assert "payg-1" in out.err
    assert "already ran" in out.err
    assert INSTANCE_ID not in out.out + out.err
    assert len(provisioner.requests) == 1


def test_cli_first_boot_stores_a_payg_license_the_lab_then_holds_in_force(
    imds: FakeImds, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    imds.product_codes = [PRODUCT_CODE]
    args = ["first-boot", "--imds-endpoint", imds.url, "--product-code", PRODUCT_CODE,
            "--no-systemctl", "--data-dir", str(tmp_path)]  # fmt: skip

    assert cli.main(args) == 0

    assert INSTANCE_ID not in capsys.readouterr().err
    env_file = tmp_path / cli.INSTANCE_ENV_FILE
    assert env_file.read_text() == f"ANNOTRAIN_INSTANCE_ID={INSTANCE_ID}\n"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "license-signing-key").stat().st_mode & 0o777 == 0o600
    # The lab as the units start it (AMI mode, bound to this instance) holds it in force.
    from annotrain.adapters.ed25519 import licensing_from_settings
    from annotrain.settings import Settings

    settings = Settings(data_dir=tmp_path, ami=True, instance_id=INSTANCE_ID)
    with SqliteStore(tmp_path / "annotrain.db") as store:
        grant = licensing_from_settings(settings).grant(store, datetime.now(UTC))
        assert [u.name for u in store.list_users().items] == ["admin"]
    assert grant.cost_banner
    assert not grant.default
