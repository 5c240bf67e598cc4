"""The serverless flow under moto, wired by the synthesized stacks' own names and environments.

An API Gateway HTTP API (v2.0) event starts a training through the jobs function,
run with the environment its template gives it: the function writes the dataset
snapshot (S3) and the run (DynamoDB) and submits a Batch job to the queue and job
definition the Compute stack defines. moto's Batch would run the job in Docker, so
the Batch client is a recording one, made where the runner makes its client (on
the first submit). The job entry the job definition names then runs in-process
with the environment that definition sets; its trainer is the real model code
(``batch_jobs.text``) when this checkout has it, else ``tests/fake_ml``'s, which
writes real model folders and metrics. The job-state SUCCEEDED event goes to the
function the event rule targets, with that function's environment; the run reads
succeeded and the model is in the registry, both through the jobs function.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
from typing import Any

import pytest
from api_events import http_api_event, lambda_context
from infra_synthesis import ROOT, Synthesis
from test_stacks import API, COMPUTE, logical_id

from annotrain.domain.records import JobKind, RunStatus

TABLE, OVERFLOW, DATA = "annotrain-records", "annotrain-overflow", "annotrain-data"
BUS = "annotrain-lab-events"
ACCOUNT_ARN = "arn:aws:batch:us-east-1:123456789012"
JOB_ID = "4c7599ae-0a82-49aa-ba5a-4727fcce14a8"
OWNER = {"username": "olga", "cognito:groups": "[user]"}
SAMPLE = ROOT / "examples" / "sample_project"


def resolve(synthesis: Synthesis, stack: str, value: Any) -> str:
    """A template value as AWS would resolve it in this test's account (moto's names)."""
    if isinstance(value, str):
        return value
    if "Fn::GetStackOutput" in value:
        reference = value["Fn::GetStackOutput"]
        producer = reference["StackName"]
        output = synthesis.templates[producer]["Outputs"][reference["OutputName"]]
        return resolve(synthesis, producer, output["Value"])
    if "Fn::ImportValue" in value:
        export = value["Fn::ImportValue"]
        names = {"TableArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}"}
        names |= {"OverflowBucketName": OVERFLOW, "DataBucketName": DATA}
        return names[export.split("-", 1)[1]]
    if "Fn::Select" in value:
        index, parts = value["Fn::Select"]
        return resolve(synthesis, stack, parts)[int(index)]  # type: ignore[index]
    if "Fn::Split" in value:
        separator, text = value["Fn::Split"]
        return resolve(synthesis, stack, text).split(separator)  # type: ignore[return-value]
    if "Fn::GetAtt" in value and value["Fn::GetAtt"][1] == "JobQueueArn":
        return f"{ACCOUNT_ARN}:job-queue/{value['Fn::GetAtt'][0]}"
    if "Ref" in value:
        resource = synthesis.templates[stack]["Resources"][value["Ref"]]
        if resource["Type"] == "AWS::Events::EventBus":  # Ref is the bus's name
            return BUS
        assert resource["Type"] == "AWS::Batch::JobDefinition"  # Ref is the definition's ARN
        return f"{ACCOUNT_ARN}:job-definition/{value['Ref']}:1"
    raise AssertionError(f"no resolution for {value!r}")


def environment_of(synthesis: Synthesis, stack: str, variables: Any) -> dict[str, str]:
    return {name: resolve(synthesis, stack, value) for name, value in variables.items()}


class RecordingBatch:
    """A Batch client that keeps what it was asked to submit (moto's Batch would run Docker)."""

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []

    def submit_job(self, **request: Any) -> dict[str, Any]:
        self.submitted.append(request)
        return {"jobId": JOB_ID, "jobName": request["jobName"]}


@pytest.fixture
def lab_storage(aws: None) -> Any:
    import boto3

    from annotrain.adapters.dynamodb import DynamoDbStore, create_table

    create_table(boto3.client("dynamodb"), TABLE)
    s3 = boto3.client("s3")
    for bucket in (OVERFLOW, DATA):
        s3.create_bucket(Bucket=bucket)
    boto3.client("events").create_event_bus(Name=BUS)
    return DynamoDbStore(TABLE, overflow_bucket=OVERFLOW)


class Functions:
    """The API functions as Lambda runs them: each with its template's environment."""

    def __init__(self, synthesis: Synthesis, monkeypatch: pytest.MonkeyPatch) -> None:
        import lambdas.api

        self.module = lambdas.api
        self._synthesis = synthesis
        self._monkeypatch = monkeypatch
        self._set: set[str] = set()
        self.module._app.cache_clear()
        self.module._handler.cache_clear()

    def environment(self, group: str) -> dict[str, str]:
        function = self._synthesis.lab.api.functions[group]
        resource = self._synthesis.templates[API]["Resources"][logical_id(function)]
        return environment_of(
            self._synthesis, API, resource["Properties"]["Environment"]["Variables"]
        )

    def invoke(self, group: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        from annotrain.settings import get_settings

        # One process plays every function: each reads only its own environment.
        for name in self._set:
            self._monkeypatch.delenv(name, raising=False)
        environment = self.environment(group)
        for name, value in environment.items():
            self._monkeypatch.setenv(name, value)
        self._set = set(environment)
        get_settings.cache_clear()
        handler = getattr(self.module, f"{group}_handler")
        response = handler(http_api_event(method, path, claims=OWNER, body=body), lambda_context())
        return response["statusCode"], json.loads(response["body"] or "null")

    def close(self) -> None:
        from annotrain.settings import get_settings

        self.module._app.cache_clear()
        self.module._handler.cache_clear()
        get_settings.cache_clear()


def flow_trainer() -> tuple[Any, Any, bool]:
    """The job's trainer and predictor loader, and whether the run may ask for the GPU.

    The real model code when this checkout has it (on a tiny encoder; a GPU run only
    where CUDA is);
    else the fake, which writes real model folders and metrics and "trains" on any
    device, so the run goes to the GPU queue.
    """
    from batch_jobs.job_io import TRAINER_MODULES

    if any(importlib.util.find_spec(name) is not None for name in TRAINER_MODULES):
        import torch

        from batch_jobs.text.model import tiny_encoder
        from batch_jobs.text.train import TrainOptions, train_snapshot
        from batch_jobs.train import default_loader

        # The real model code on a tiny encoder, and without the production minimum of
        # 40 examples per label: the sample project has a handful.
        options = TrainOptions(min_examples_per_label=1, encoder=tiny_encoder())
        trainer = functools.partial(train_snapshot, options=options)
        return (lambda: trainer), default_loader, torch.cuda.is_available()
    from fake_ml import FakeLoader, FakeTrainer

    trainer = FakeTrainer()
    return (lambda: trainer), FakeLoader, True


def test_a_training_goes_from_the_http_api_to_a_registered_model_through_the_stacks_functions(
    synthesis: Synthesis, lab_storage: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from annotrain.adapters.s3 import S3BlobStore
    from batch_jobs.runtime import run_job
    from batch_jobs.train import train

    store = lab_storage
    compute = synthesis.templates[COMPUTE]["Resources"]
    lab = synthesis.lab
    batch = RecordingBatch()
    make_client = boto3.client
    monkeypatch.setattr(
        boto3,
        "client",
        lambda service, *a, **k: batch if service == "batch" else make_client(service, *a, **k),
    )
    functions = Functions(synthesis, monkeypatch)
    try:
        # 0. A project with annotated notes, through the projects function.
        status, project = functions.invoke(
            "projects", "POST", "/api/v1/projects",
            {"name": "Notes", "labeling_config": (SAMPLE / "config.xml").read_text()},
        )  # fmt: skip
        assert status == 201, project
        tasks = json.loads((SAMPLE / "tasks.json").read_text())
        status, imported = functions.invoke(
            "projects", "POST", f"/api/v1/projects/{project['id']}/tasks/import", tasks
        )
        assert status == 201, imported

        # 1. The training starts through the jobs function: snapshot and run written, job sent.
        trainer, loader, use_gpu = flow_trainer()
        status, started = functions.invoke(
            "jobs", "POST", f"/api/v1/projects/{project['id']}/trainings",
            {"types": ["ner"], "params": {"epochs": 1, "batch_size": 4},
             "split": {"validation_share": 0.2}, "use_gpu": use_gpu, "deploy": True},
        )  # fmt: skip
        assert status == 202, started
        run = store.get_run(started["id"])
        assert (run.status, run.job_ref, run.use_gpu) == (RunStatus.QUEUED, JOB_ID, use_gpu)
        assert run.dataset_key is not None
        assert S3BlobStore(DATA).head(run.dataset_key).size > 0

        # 2. It went to the GPU (or CPU) queue with that profile's training job definition.
        (request,) = batch.submitted
        capacity = lab.compute.capacities["gpu" if use_gpu else "cpu"]
        assert request["jobQueue"] == f"{ACCOUNT_ARN}:job-queue/{logical_id(capacity.queue)}"
        train_definition = logical_id(capacity.job_definitions[JobKind.TRAIN])
        assert request["jobDefinition"] == f"{ACCOUNT_ARN}:job-definition/{train_definition}:1"
        assert request["parameters"] == {"run_id": run.id}

        # 3. The job entry, in-process, with its job definition's command and environment.
        container = compute[train_definition]["Properties"]["ContainerProperties"]
        job_env = {
            v["Name"]: resolve(synthesis, COMPUTE, v["Value"]) for v in container["Environment"]
        }
        job_env |= {v["name"]: v["value"] for v in request["containerOverrides"]["environment"]}
        module, *argv = [
            request["parameters"].get(a[5:], a) if a.startswith("Ref::") else a
            for a in container["Command"]
        ]
        assert module == "batch_jobs.train"
        work = functools.partial(train, trainer=trainer, loader=loader)
        assert run_job(work, argv, environ=job_env, heartbeat_interval=60) == 0
        assert store.get_run(run.id).status is RunStatus.SUCCEEDED

        # 4. The SUCCEEDED event into the function the rule targets, with its environment.
        function = compute[logical_id(lab.compute.events.function)]["Properties"]
        for name, value in environment_of(
            synthesis, COMPUTE, function["Environment"]["Variables"]
        ).items():
            monkeypatch.setenv(name, value)
        module_name, handler_name = function["Handler"].rsplit(".", 1)
        events_module = importlib.import_module(module_name)
        events_module._store.cache_clear()
        started_at, stopped_at = 1_795_000_000_000, 1_795_000_600_000
        event = {
            "source": "aws.batch",
            "detail-type": "Batch Job State Change",
            "detail": {
                "jobId": JOB_ID,
                "jobName": request["jobName"],
                "jobQueue": request["jobQueue"],
                "status": "SUCCEEDED",
                "parameters": request["parameters"],
                "attempts": [
                    {
                        "container": {"exitCode": 0},
                        "startedAt": started_at,
                        "stoppedAt": stopped_at,
                        "statusReason": "Essential container in task exited",
                    }
                ],
                "startedAt": started_at,
                "stoppedAt": stopped_at,
            },
        }
        rule = compute[logical_id(lab.compute.events.rule)]["Properties"]["EventPattern"]
        assert event["source"] in rule["source"]
        assert event["detail-type"] in rule["detail-type"]
        outcome = getattr(events_module, handler_name)(event, lambda_context())
        assert (outcome["run_id"], outcome["run_status"]) == (run.id, "succeeded")
        assert store.list_servers().items == []

        # 5. Through the jobs function: the run succeeded, and its model is in the registry.
        status, training = functions.invoke("jobs", "GET", f"/api/v1/trainings/{run.id}")
        assert (status, training["status"], training["progress"]) == (200, "succeeded", 100)
        status, models = functions.invoke("jobs", "GET", "/api/v1/models")
        assert status == 200
        (model,) = models["items"]
        assert (model["project_id"], model["latest_version"]) == (project["id"], 1)
        assert model["deployed_in"] == [project["id"]]
        status, detail = functions.invoke("jobs", "GET", f"/api/v1/models/{model['name']}")
        assert (status, [v["run_id"] for v in detail["history"]]) == (200, [run.id])
        stored = S3BlobStore(DATA).list(f"models/{model['name']}/{run.id}/").items
        assert any(blob.key.endswith("annotrain.json") for blob in stored)
    finally:
        functions.close()
