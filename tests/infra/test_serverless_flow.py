"""The serverless flow under moto, wired by the synthesized stacks' own names and environments.

The jobs function's environment (resolved through the templates' cross-stack
outputs) names the queue and job definition a run is submitted with; the job
entry runs in-process with the environment its job definition sets; the
job-state event goes to the handler the event rule targets, with that function's
environment. The trainings route and the training work land with the training
service (issue 5): here the run is created as that service will create it, and
the work is a stand-in that writes a model file.
"""

from __future__ import annotations

import importlib
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from infra_synthesis import Synthesis
from test_stacks import API, COMPUTE, logical_id

from annotrain.adapters.batch import BatchJobRunner
from annotrain.domain.records import JobKind, Run, RunStatus
from annotrain.ports import JobSpec

TABLE, OVERFLOW, DATA = "annotrain-records", "annotrain-overflow", "annotrain-data"
ACCOUNT_ARN = "arn:aws:batch:us-east-1:123456789012"
JOB_ID = "4c7599ae-0a82-49aa-ba5a-4727fcce14a8"
CREATED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


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
    return DynamoDbStore(TABLE, overflow_bucket=OVERFLOW)


def test_a_run_goes_from_submit_to_succeeded_through_the_stacks_queue_job_and_event_function(
    synthesis: Synthesis, lab_storage: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annotrain.adapters.s3 import S3BlobStore
    from batch_jobs.runtime import JobContext, run_job

    store = lab_storage
    api = synthesis.templates[API]["Resources"]
    compute = synthesis.templates[COMPUTE]["Resources"]
    lab = synthesis.lab

    # 1. The jobs function's runner, built from the names its environment gives.
    jobs_env = environment_of(
        synthesis,
        API,
        api[logical_id(lab.api.functions["jobs"])]["Properties"]["Environment"]["Variables"],
    )
    batch = RecordingBatch()
    runner = BatchJobRunner(
        store,
        queues={"gpu": jobs_env["ANNOTRAIN_GPU_QUEUE"], "cpu": jobs_env["ANNOTRAIN_CPU_QUEUE"]},
        job_definitions={
            k: jobs_env[f"ANNOTRAIN_JOB_DEFINITION_{k.value.upper()}"] for k in JobKind
        },
        gpu_job_definitions={
            k: jobs_env[f"ANNOTRAIN_GPU_JOB_DEFINITION_{k.value.upper()}"]
            for k in (JobKind.TRAIN, JobKind.PREANNOTATE)
        },
        client=batch,
    )
    store.create_run(Run("run-1", 3, JobKind.TRAIN, RunStatus.QUEUED, "ana", CREATED, use_gpu=True))
    assert runner.submit(JobSpec(JobKind.TRAIN, "run-1", use_gpu=True)) == JOB_ID

    # 2. It went to the GPU queue with the GPU training job definition of the Compute stack.
    (request,) = batch.submitted
    gpu = lab.compute.capacities["gpu"]
    assert request["jobQueue"] == f"{ACCOUNT_ARN}:job-queue/{logical_id(gpu.queue)}"
    train_definition = logical_id(gpu.job_definitions[JobKind.TRAIN])
    assert request["jobDefinition"] == f"{ACCOUNT_ARN}:job-definition/{train_definition}:1"

    # 3. The job entry, in-process, with its job definition's command and environment.
    container = compute[train_definition]["Properties"]["ContainerProperties"]
    job_env = {v["Name"]: resolve(synthesis, COMPUTE, v["Value"]) for v in container["Environment"]}
    job_env |= {v["name"]: v["value"] for v in request["containerOverrides"]["environment"]}
    module, *argv = [
        request["parameters"].get(a[5:], a) if a.startswith("Ref::") else a
        for a in container["Command"]
    ]
    assert module == "batch_jobs.train"

    def stand_in_training(context: JobContext) -> None:
        blobs = S3BlobStore(job_env["ANNOTRAIN_DATA_BUCKET"])
        blobs.put("models/ner/1/model.safetensors", io.BytesIO(b"weights"))

    assert run_job(stand_in_training, argv, environ=job_env, heartbeat_interval=60) == 0
    assert store.get_run("run-1").status is RunStatus.SUCCEEDED

    # 4. The SUCCEEDED event into the function the rule targets, with its environment.
    function = compute[logical_id(lab.compute.events.function)]["Properties"]
    for name, value in environment_of(
        synthesis, COMPUTE, function["Environment"]["Variables"]
    ).items():
        monkeypatch.setenv(name, value)
    module_name, handler_name = function["Handler"].rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), handler_name)
    importlib.import_module(module_name)._store.cache_clear()
    started, stopped = 1_795_000_000_000, 1_795_000_600_000
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
                    "startedAt": started,
                    "stoppedAt": stopped,
                    "statusReason": "Essential container in task exited",
                }
            ],
            "startedAt": started,
            "stoppedAt": stopped,
        },
    }
    rule = compute[logical_id(lab.compute.events.rule)]["Properties"]["EventPattern"]
    assert event["source"] in rule["source"]
    assert event["detail-type"] in rule["detail-type"]
    outcome = handler(event, None)
    assert outcome["run_id"] == "run-1"
    assert outcome["run_status"] == "succeeded"

    run = store.get_run("run-1")
    assert run.status is RunStatus.SUCCEEDED
    assert run.job_ref == JOB_ID
    assert store.list_servers().items == []
    stored = S3BlobStore(DATA).open("models/ner/1/model.safetensors").read()
    assert stored == b"weights"
    assert json.dumps(request["tags"])  # the run's tags travel with the job
