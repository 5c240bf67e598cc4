"""Licenses over HTTP: import, list, delete, AMI refusals, scopes and server limits at
run start, the cost banner on every response, the GPU flag, PAYG renewal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE_CONFIG, make_settings
from fake_runner import RecordingRunner
from fakes import FakeClock
from fastapi.testclient import TestClient
from licensing_kit import (
    INSTANCE_ID,
    PRODUCT_CODE,
    licensing_trusting,
    vendor_license,
    vendor_signer,
)

from annotrain.adapters.ed25519 import Ed25519KeyFile, Ed25519Signer
from annotrain.adapters.sqlite import SqliteStore
from annotrain.api import create_app
from annotrain.domain.config import parse_labeling_config
from annotrain.domain.labelstudio import load_tasks
from annotrain.domain.licenses import COST_BANNER, LicenseError, LicenseType, Scope, ServerLimits
from annotrain.domain.records import JobKind, RunStatus, UserRole
from annotrain.services.licenses import Licensing, generate_payg_license, renew_payg_license
from annotrain.services.users import create_user

SAMPLE_TASKS = Path(__file__).resolve().parents[2] / "examples" / "sample_project" / "tasks.json"
BANNER_HEADER = "x-annotrain-cost-banner"
VENDOR = vendor_signer()
TWO_EACH = ServerLimits(2, 2)


@dataclass
class LicensedLab:
    client: TestClient
    store: SqliteStore
    clock: FakeClock
    tokens: dict[str, str]
    project_id: int
    runner: RecordingRunner
    instance: Ed25519Signer
    licensing: Licensing

    def auth(self, who: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def train(self, who: str = "owner") -> Any:
        return self.client.post(
            f"/api/v1/projects/{self.project_id}/trainings",
            json={"params": {"epochs": 1}, "deploy": False},
            headers=self.auth(who),
        )

    def grant_payg(self, limits: ServerLimits = TWO_EACH) -> None:
        generate_payg_license(
            self.store, self.instance, self.clock, instance_id=INSTANCE_ID,
            product_code=PRODUCT_CODE, limits=limits, validity=timedelta(days=30),
        )  # fmt: skip
        self.client.app.state.grants.invalidate()  # type: ignore[attr-defined]


def _lab(
    tmp_path: Path, *, ami: bool = False, gpu: bool = False, **settings: Any
) -> Iterator[LicensedLab]:
    clock = FakeClock()
    instance = Ed25519Signer.generate()
    licensing = licensing_trusting(VENDOR, instance=instance, ami=ami)
    with SqliteStore(tmp_path / "annotrain.db") as store:
        tokens = {
            "admin": create_user(store, "admin", UserRole.ADMIN, clock)[1],
            "owner": create_user(store, "owner", UserRole.USER, clock)[1],
        }
        runner = RecordingRunner(store)
        app = create_app(
            settings=make_settings(tmp_path, ami=ami, **settings), store=store, clock=clock,
            runner=runner, licensing=licensing, gpu_probe=lambda: gpu,
        )  # fmt: skip
        with TestClient(app) as client:
            created = client.post(
                "/api/v1/projects",
                json={"name": "Notes", "labeling_config": SAMPLE_CONFIG},
                headers={"Authorization": f"Bearer {tokens['owner']}"},
            )
            project_id = created.json()["id"]
            schema = parse_labeling_config(SAMPLE_CONFIG)
            store.add_tasks(project_id, load_tasks(SAMPLE_TASKS.read_bytes(), schema))
            yield LicensedLab(client, store, clock, tokens, project_id, runner, instance, licensing)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LicensedLab]:
    yield from _lab(tmp_path)


@pytest.fixture
def ami_lab(tmp_path: Path) -> Iterator[LicensedLab]:
    yield from _lab(tmp_path, ami=True)


# --- import, list, delete -------------------------------------------------------------


def test_an_imported_license_is_listed_in_force_and_deleted(lab: LicensedLab) -> None:
    document = vendor_license(VENDOR, issued_at=lab.clock.now())
    created = lab.client.post("/api/v1/licenses", json={"document": document}, headers=lab.auth())
    assert created.status_code == 201, created.text
    assert created.json()["type"] == "FLOATING"
    assert created.json()["limits"] == {
        "training_servers": 1, "preannotation_servers": 1, "servers": 1
    }  # fmt: skip
    listing = lab.client.get("/api/v1/licenses", headers=lab.auth()).json()
    assert [(i["id"], i["in_force"]) for i in listing["items"]] == [("lic-1", True)]
    assert listing["default"] is False
    assert lab.client.delete("/api/v1/licenses/lic-1", headers=lab.auth()).status_code == 204
    assert lab.client.get("/api/v1/licenses", headers=lab.auth()).json()["items"] == []


def test_a_tampered_license_is_refused_and_nothing_is_stored(lab: LicensedLab) -> None:
    document = vendor_license(VENDOR, issued_at=lab.clock.now()).replace("FLOATING", "TRIAL")
    response = lab.client.post("/api/v1/licenses", json={"document": document}, headers=lab.auth())
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_license"
    assert lab.store.list_licenses().items == []


def test_an_expired_license_is_refused_with_its_date(lab: LicensedLab) -> None:
    document = vendor_license(VENDOR, issued_at=lab.clock.now() - timedelta(days=31))
    error = lab.client.post(
        "/api/v1/licenses", json={"document": document}, headers=lab.auth()
    ).json()["error"]
    assert error["field"] == "expires_at"
    assert "expired on 2026-11-20T12:00:00Z" in error["message"]


def test_a_payg_license_cannot_be_imported(lab: LicensedLab) -> None:
    lab.grant_payg()
    (record,) = lab.store.list_licenses().items
    lab.store.delete_license(record.id)
    response = lab.client.post(
        "/api/v1/licenses", json={"document": record.document}, headers=lab.auth()
    )
    assert response.status_code == 422
    assert "cannot be imported" in response.json()["error"]["message"]


def test_on_an_ami_import_and_delete_are_refused_saying_why(ami_lab: LicensedLab) -> None:
    ami_lab.grant_payg()
    document = vendor_license(VENDOR, issued_at=ami_lab.clock.now())
    imported = ami_lab.client.post(
        "/api/v1/licenses", json={"document": document}, headers=ami_lab.auth()
    )
    (payg,) = ami_lab.client.get("/api/v1/licenses", headers=ami_lab.auth()).json()["items"]
    deleted = ami_lab.client.delete(f"/api/v1/licenses/{payg['id']}", headers=ami_lab.auth())
    for response in (imported, deleted):
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "ami_mode"
        assert "AWS Marketplace instance" in error["message"]
        assert "pay-as-you-go" in error["message"]
    assert payg["type"] == "PAYG"
    assert payg["in_force"]
    assert payg["instance_id"] == INSTANCE_ID
    assert len(ami_lab.store.list_licenses().items) == 1


def test_an_ami_without_its_payg_license_grants_nothing(ami_lab: LicensedLab) -> None:
    response = ami_lab.train()
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "license_scope_missing"
    assert error["field"] == "training"
    assert "POST /api/v1/licenses" in error["message"]


# --- scopes at run start ---------------------------------------------------------------


def test_without_any_license_a_single_node_trains_under_the_default(lab: LicensedLab) -> None:
    assert lab.train().status_code == 202


def test_a_license_without_the_training_scope_refuses_training_naming_it(
    lab: LicensedLab,
) -> None:
    document = vendor_license(
        VENDOR, kind=LicenseType.TRIAL, issued_at=lab.clock.now(),
        scopes=frozenset({Scope.INFERENCE}),
    )  # fmt: skip
    lab.client.post("/api/v1/licenses", json={"document": document}, headers=lab.auth())
    response = lab.train()
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["field"] == "training"
    assert "'training' scope" in error["message"]
    assert "grant only: inference" in error["message"]
    assert lab.store.list_runs(lab.project_id).items == []


def test_an_expired_license_stops_training_saying_it_expired(lab: LicensedLab) -> None:
    document = vendor_license(VENDOR, kind=LicenseType.TRIAL, issued_at=lab.clock.now(),
                              valid_for=timedelta(days=1))  # fmt: skip
    lab.client.post("/api/v1/licenses", json={"document": document}, headers=lab.auth())
    lab.clock.advance(2 * 86400)
    error = lab.train().json()["error"]
    assert error["code"] == "license_scope_missing"
    assert "expired on" in error["message"]


# --- server limits ---------------------------------------------------------------------


def test_payg_allows_its_configured_number_of_parallel_trainings(lab: LicensedLab) -> None:
    lab.grant_payg(ServerLimits(2, 2))
    assert [lab.train().status_code for _ in range(2)] == [202, 202]
    refused = lab.train()
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "server_limit_reached"
    assert "allows 2 training server(s)" in error["message"]
    assert len(lab.runner.submitted) == 2
    servers = lab.client.get("/api/v1/servers", headers=lab.auth()).json()
    training = next(c for c in servers["capacity"] if c["server_class"] == "training")
    assert training["limit"] == 2
    assert training["in_use"] == 2
    assert sorted(training["held_by"]) == sorted(s.run_id for s in lab.runner.submitted)


def test_a_finished_run_frees_its_server(lab: LicensedLab) -> None:
    from annotrain.services.run_lifecycle import mark_finished

    lab.grant_payg(ServerLimits(1, 1))
    first = lab.train().json()["id"]
    assert lab.train().status_code == 409
    mark_finished(lab.store, first, RunStatus.SUCCEEDED, at=lab.clock.now(), reason=None)
    assert lab.train().status_code == 202


def test_floating_runs_one_server_at_a_time_across_kinds(lab: LicensedLab) -> None:
    document = vendor_license(VENDOR, issued_at=lab.clock.now(), limits=ServerLimits(3, 3, 3))
    lab.client.post("/api/v1/licenses", json={"document": document}, headers=lab.auth())
    assert lab.train().status_code == 202
    second = lab.train()
    assert second.status_code == 409
    assert "allows 1" in second.json()["error"]["message"]
    from annotrain.domain.records import ModelEntry
    from annotrain.domain.training_plan import ModelKind

    lab.store.register_model(ModelEntry("m", 1, ModelKind.NER, ("Medication",), lab.project_id,
                                        "r", "models/m/1", "base", lab.clock.now()))  # fmt: skip
    pre = lab.client.post(
        f"/api/v1/projects/{lab.project_id}/preannotations", json={"models": ["m"]},
        headers=lab.auth("owner"),
    )  # fmt: skip
    assert pre.status_code == 409


def test_a_run_that_loses_the_race_for_the_last_server_is_failed_not_left_queued(
    lab: LicensedLab,
) -> None:
    from annotrain.domain.licenses import ServerLimitError
    from annotrain.domain.records import Run
    from annotrain.services.licenses import admit_run, confirm_admission

    lab.grant_payg(ServerLimits(1, 1))
    # Both pass the count before either is written, as two requests at once would.
    first = admit_run(lab.store, lab.licensing, lab.clock, JobKind.TRAIN, action="training")
    second = admit_run(lab.store, lab.licensing, lab.clock, JobKind.TRAIN, action="training")
    now = lab.clock.now()
    run_a = lab.store.create_run(Run("train-a", lab.project_id, JobKind.TRAIN, RunStatus.QUEUED,
                                     "owner", now))  # fmt: skip
    run_b = lab.store.create_run(Run("train-b", lab.project_id, JobKind.TRAIN, RunStatus.QUEUED,
                                     "owner", now))  # fmt: skip
    with pytest.raises(ServerLimitError):
        confirm_admission(lab.store, second, run_b, lab.clock)
    confirm_admission(lab.store, first, run_a, lab.clock)
    assert lab.store.get_run("train-a").status is RunStatus.QUEUED
    lost = lab.store.get_run("train-b")
    assert lost.status is RunStatus.FAILED
    assert "refused" in (lost.failure_reason or "")


# --- the cost banner ---------------------------------------------------------------------


def test_under_payg_every_response_carries_the_cost_banner(lab: LicensedLab) -> None:
    lab.grant_payg()
    system = lab.client.get("/api/v1/system", headers=lab.auth("owner"))
    assert system.json()["cost_banner"] == COST_BANNER
    assert lab.client.get("/api/v1/servers", headers=lab.auth()).json()["items"] == []
    responses = [
        system,
        lab.client.get("/api/v1/projects", headers=lab.auth("owner")),
        lab.client.get("/api/v1/projects"),  # 401
        lab.client.get("/api/v1/projects/999", headers=lab.auth("owner")),  # 404
        lab.client.post("/api/v1/projects", json={}, headers=lab.auth("owner")),  # 422
        lab.client.get("/api/v1/nothing-here", headers=lab.auth()),
        lab.client.get("/health"),
    ]
    assert [r.headers.get(BANNER_HEADER) for r in responses] == [COST_BANNER] * len(responses)


def test_without_payg_no_response_carries_the_banner(lab: LicensedLab) -> None:
    document = vendor_license(VENDOR, issued_at=lab.clock.now())
    lab.client.post("/api/v1/licenses", json={"document": document}, headers=lab.auth())
    system = lab.client.get("/api/v1/system", headers=lab.auth())
    assert system.json()["cost_banner"] is None
    for response in (system, lab.client.get("/api/v1/projects"), lab.client.get("/health")):
        assert BANNER_HEADER not in response.headers


def test_the_banner_goes_when_the_payg_license_expires(ami_lab: LicensedLab) -> None:
    ami_lab.grant_payg()
    assert ami_lab.client.get("/api/v1/system", headers=ami_lab.auth()).headers[BANNER_HEADER]
    ami_lab.clock.advance(31 * 86400)
    response = ami_lab.client.get("/api/v1/system", headers=ami_lab.auth())
    assert BANNER_HEADER not in response.headers
    assert response.json()["license"] == "no license in force"


def test_the_banners_state_is_cached_between_requests(lab: LicensedLab) -> None:
    lab.grant_payg()
    calls = 0
    real = lab.store.list_licenses

    def counting(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(**kwargs)

    lab.store.list_licenses = counting  # type: ignore[method-assign]
    for _ in range(5):
        lab.client.get("/health")
    assert calls <= 1


# --- GPU ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu", "use_gpu", "said"),
    [(True, True, "GPU Resource Available"), (True, False, "no GPU"), (False, True, "no GPU")],
)
def test_gpu_resource_available_exactly_with_a_gpu_and_use_gpu_on(
    tmp_path: Path, gpu: bool, use_gpu: bool, said: str
) -> None:
    for lab in _lab(tmp_path, gpu=gpu, use_gpu=use_gpu):
        body = lab.client.get("/api/v1/system", headers=lab.auth("owner")).json()
        assert (body["gpu"], body["gpu_available"], body["use_gpu"]) == (said, said != "no GPU",
                                                                         use_gpu)  # fmt: skip


def test_with_use_gpu_off_a_gpu_training_is_refused(tmp_path: Path) -> None:
    for lab in _lab(tmp_path, gpu=True, use_gpu=False):
        response = lab.client.post(
            f"/api/v1/projects/{lab.project_id}/trainings", json={"use_gpu": True},
            headers=lab.auth("owner"),
        )  # fmt: skip
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "use_gpu"


# --- PAYG generation and renewal ----------------------------------------------------------


def _renew(lab: LicensedLab, limits: ServerLimits = TWO_EACH) -> Any:
    return renew_payg_license(
        lab.store, lab.licensing, lab.instance, lab.clock, limits=limits,
        validity=timedelta(days=30), renew_before=timedelta(days=7),
    )  # fmt: skip


def test_renewal_makes_the_next_license_before_the_current_one_expires(
    ami_lab: LicensedLab,
) -> None:
    ami_lab.grant_payg()
    (first,) = ami_lab.store.list_licenses().items
    assert _renew(ami_lab) is None  # 30 days left: nothing to do
    ami_lab.clock.advance(24 * 86400)
    assert _renew(ami_lab) is not None
    assert _renew(ami_lab) is None  # idempotent
    (second,) = ami_lab.store.list_licenses().items
    assert second.id != first.id
    old = ami_lab.licensing.judge([first], ami_lab.clock.now())[0].license
    new = ami_lab.licensing.judge([second], ami_lab.clock.now())[0].license
    assert old is not None
    assert new is not None
    assert new.issued_at < old.expires_at < new.expires_at  # no gap
    ami_lab.client.app.state.grants.invalidate()  # type: ignore[attr-defined]
    assert ami_lab.client.get("/api/v1/system", headers=ami_lab.auth()).json()["cost_banner"]


def test_renewal_also_follows_changed_limits(ami_lab: LicensedLab) -> None:
    ami_lab.grant_payg(ServerLimits(2, 2))
    renewed = _renew(ami_lab, ServerLimits(4, 2))
    assert renewed is not None
    assert renewed.limits == ServerLimits(4, 2)


def test_renewal_without_a_first_boot_license_says_so(ami_lab: LicensedLab) -> None:
    with pytest.raises(LicenseError, match="first boot"):
        _renew(ami_lab)


def test_generation_removes_payg_licenses_of_other_instances(ami_lab: LicensedLab) -> None:
    other = Ed25519Signer.generate()
    generate_payg_license(
        ami_lab.store, other, ami_lab.clock, instance_id="i-0aaaaaaaaaaaaaaa0",
        product_code=PRODUCT_CODE, limits=ServerLimits(1, 1), validity=timedelta(days=30),
    )  # fmt: skip
    ami_lab.grant_payg()
    (kept,) = ami_lab.store.list_licenses().items
    assert INSTANCE_ID in kept.document  # bound to this instance
    assert INSTANCE_ID not in kept.id  # the admin's first token never names a license


def test_the_instance_key_file_is_private_and_made_once(tmp_path: Path) -> None:
    key_file = Ed25519KeyFile(tmp_path / "data" / "license-signing-key")
    first = key_file.load_or_create()
    assert (key_file.path.stat().st_mode & 0o777) == 0o600
    assert key_file.load_or_create().public_key == first.public_key
    assert "PRIVATE" not in repr(first)
    key_file.path.chmod(0o644)
    with pytest.raises(LicenseError, match="chmod 600"):
        key_file.load()


def _visual_project(lab: LicensedLab, tmp_path: Path) -> int:
    """An invoice project whose two image tasks have completions and OCR beside their images.

    The OCR records are written from the forms' gold fields (one word per field), so
    no Tesseract is needed: the licence check is what these tests are about.
    """
    import io
    import json

    from annotrain.adapters.filesystem import FilesystemBlobStore
    from annotrain.domain.ocr import OcrPage, OcrWord, ocr_key, page_to_json
    from annotrain.domain.task_files import image_reference
    from batch_jobs.visual.synthetic import LABELING_CONFIG, generate_form

    created = lab.client.post(
        "/api/v1/projects", json={"name": "Invoices", "labeling_config": LABELING_CONFIG},
        headers=lab.auth("owner"),
    )  # fmt: skip
    project_id = int(created.json()["id"])
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    tasks = []
    for seed in range(2):
        form = generate_form(seed)
        words = tuple(
            OcrWord(f.text.replace(" ", ""), f.box[0], f.box[1], f.box[2] - f.box[0],
                    f.box[3] - f.box[1], 90.0, line)
            for line, f in enumerate(form.fields)
        )  # fmt: skip
        page = OcrPage(*form.size, words, "eng", "5.3.0", "0" * 64)
        image_id = f"{seed + 1:032x}"
        record = json.dumps(page_to_json(page)).encode()
        blobs.put(ocr_key(project_id, image_id), io.BytesIO(record))
        tasks.append(form.task(image_reference(project_id, image_id)))
    schema = parse_labeling_config(LABELING_CONFIG)
    lab.store.add_tasks(project_id, load_tasks(json.dumps(tasks).encode(), schema))
    return project_id


def test_a_license_without_ocr_training_refuses_visual_ner_training_naming_the_scope(
    lab: LicensedLab, tmp_path: Path
) -> None:
    document = vendor_license(
        VENDOR, kind=LicenseType.TRIAL, issued_at=lab.clock.now(),
        scopes=frozenset({Scope.TRAINING, Scope.INFERENCE, Scope.OCR_INFERENCE}),
    )  # fmt: skip
    lab.client.post("/api/v1/licenses", json={"document": document}, headers=lab.auth())
    project_id = _visual_project(lab, tmp_path)
    response = lab.client.post(
        f"/api/v1/projects/{project_id}/trainings",
        json={"types": ["visual_ner"], "split": {"validation_share": 0.5}},
        headers=lab.auth("owner"),
    )
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "license_scope_missing"
    assert "'ocr:training' scope" in error["message"]
    assert lab.store.list_runs(project_id).items == []
    # The text scope alone is what the same license's text training needs: it starts.
    assert lab.train().status_code == 202


def test_a_license_without_ocr_inference_refuses_visual_ner_preannotation(
    lab: LicensedLab, tmp_path: Path
) -> None:
    from annotrain.domain.records import ModelEntry
    from annotrain.domain.training_plan import ModelKind

    document = vendor_license(
        VENDOR, kind=LicenseType.TRIAL, issued_at=lab.clock.now(),
        scopes=frozenset({Scope.TRAINING, Scope.INFERENCE, Scope.OCR_TRAINING}),
    )  # fmt: skip
    lab.client.post("/api/v1/licenses", json={"document": document}, headers=lab.auth())
    project_id = _visual_project(lab, tmp_path)
    lab.store.register_model(ModelEntry(
        name=f"project{project_id}-visual_ner", version=0, kind=ModelKind.VISUAL_NER,
        labels=("Total",), project_id=project_id, run_id="train-x",
        artifact_key="models/x", base_model="minilm-l6-en", created_at=lab.clock.now(),
    ))  # fmt: skip
    response = lab.client.post(
        f"/api/v1/projects/{project_id}/preannotations",
        json={"models": [f"project{project_id}-visual_ner"]},
        headers=lab.auth("owner"),
    )
    assert response.status_code == 403, response.text
    assert "'ocr:inference' scope" in response.json()["error"]["message"]
    assert lab.store.list_runs(project_id).items == []
