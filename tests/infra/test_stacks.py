"""The synthesized lab: Batch wiring, least privilege, encryption, environments, lint and nag."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from infra_synthesis import ROOT, Synthesis

from annotrain.adapters.batch import RETRY_STRATEGY
from annotrain.domain.records import JobKind
from annotrain.settings import Mode, Settings

STORAGE, COMPUTE, API = "AnnotrainStorage", "AnnotrainCompute", "AnnotrainApi"
AMI, MONITORING = "AnnotrainAmi", "AnnotrainMonitoring"


def logical_id(construct: Any) -> str:
    """The logical id of a construct's CloudFormation resource."""
    from aws_cdk import Stack

    stack = Stack.of(construct)
    resolved: str = stack.resolve(stack.get_logical_id(construct.node.default_child))
    return resolved


def job_definitions(synthesis: Synthesis, profile: str) -> dict[JobKind, dict[str, Any]]:
    capacity = synthesis.lab.compute.capacities[profile]
    resources = synthesis.templates[COMPUTE]["Resources"]
    return {
        kind: resources[logical_id(definition)]["Properties"]
        for kind, definition in capacity.job_definitions.items()
    }


def policies_of_role(template: dict[str, Any], role_logical_id: str) -> list[dict[str, Any]]:
    """Every statement of the inline policies attached to one role."""
    statements = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role_logical_id} in resource["Properties"].get("Roles", []):
            statements.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return statements


def actions(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found


def function_role(synthesis: Synthesis, group: str) -> str:
    function = synthesis.lab.api.functions[group]
    return logical_id(function.role)


# --- Batch -------------------------------------------------------------------------


def test_gpu_job_definitions_reserve_a_gpu_and_cpu_ones_do_not(synthesis: Synthesis) -> None:
    gpu = job_definitions(synthesis, "gpu")
    assert set(gpu) == {JobKind.TRAIN, JobKind.PREANNOTATE}
    for properties in gpu.values():
        requirements = properties["ContainerProperties"]["ResourceRequirements"]
        assert {"Type": "GPU", "Value": "1"} in requirements
    cpu = job_definitions(synthesis, "cpu")
    assert set(cpu) == set(JobKind)
    for properties in cpu.values():
        requirements = properties["ContainerProperties"]["ResourceRequirements"]
        assert all(r["Type"] != "GPU" for r in requirements)


def test_each_queue_is_wired_to_the_compute_environment_of_its_profile(
    synthesis: Synthesis,
) -> None:
    resources = synthesis.templates[COMPUTE]["Resources"]
    for profile, capacity in synthesis.lab.compute.capacities.items():
        queue = resources[logical_id(capacity.queue)]["Properties"]
        environment_id = logical_id(capacity.compute_environment)
        assert queue["ComputeEnvironmentOrder"] == [
            {
                "ComputeEnvironment": {"Fn::GetAtt": [environment_id, "ComputeEnvironmentArn"]},
                "Order": 1,
            }
        ]
        compute = resources[environment_id]["Properties"]["ComputeResources"]
        image_type = compute["Ec2Configuration"][0]["ImageType"]
        if profile == "gpu":
            assert image_type == "ECS_AL2_NVIDIA"
            assert compute["InstanceTypes"] == ["g4dn"]
            assert compute["Type"] == "SPOT"
        else:
            assert image_type == "ECS_AL2"
            assert "g4dn" not in compute["InstanceTypes"]
        assert compute["MinvCpus"] == 0
        assert compute["Subnets"], "instances run in the VPC's private subnets"


def test_job_definitions_retry_reclaimed_hosts_only_and_time_out(synthesis: Synthesis) -> None:
    expected_retry = {
        "Attempts": RETRY_STRATEGY["attempts"],
        "EvaluateOnExit": [
            {k[0].upper() + k[1:]: v for k, v in rule.items()}
            for rule in RETRY_STRATEGY["evaluateOnExit"]
        ],
    }
    for profile in ("gpu", "cpu"):
        for properties in job_definitions(synthesis, profile).values():
            assert properties["RetryStrategy"] == expected_retry
            # A reclaimed or failed host is retried; a job that failed on its own is not.
            rules = properties["RetryStrategy"]["EvaluateOnExit"]
            assert rules[0] == {"OnStatusReason": "Host EC2*", "Action": "RETRY"}
            assert rules[-1] == {"OnReason": "*", "Action": "EXIT"}
            assert properties["RetryStrategy"]["Attempts"] > 1
            assert properties["Timeout"]["AttemptDurationSeconds"] > 0
            assert properties["PropagateTags"] is True


def test_job_definitions_run_the_kinds_module_with_the_store_the_job_runtime_reads(
    synthesis: Synthesis,
) -> None:
    for profile in ("gpu", "cpu"):
        for kind, properties in job_definitions(synthesis, profile).items():
            container = properties["ContainerProperties"]
            assert container["Command"] == [f"batch_jobs.{kind.value}", "--run-id", "Ref::run_id"]
            names = {variable["Name"] for variable in container["Environment"]}
            assert {
                "ANNOTRAIN_MODE",
                "ANNOTRAIN_TABLE",
                "ANNOTRAIN_OVERFLOW_BUCKET",
                "ANNOTRAIN_DATA_BUCKET",
                "ANNOTRAIN_HEARTBEAT_SECONDS",
            } <= names
            assert "ANNOTRAIN_DB" not in names  # that would open SQLite inside the container


def test_job_state_changes_of_the_labs_queues_reach_the_event_function_with_a_dead_letter_queue(
    synthesis: Synthesis,
) -> None:
    events = synthesis.lab.compute.events
    rule = synthesis.templates[COMPUTE]["Resources"][logical_id(events.rule)]["Properties"]
    assert rule["EventPattern"]["source"] == ["aws.batch"]
    assert rule["EventPattern"]["detail-type"] == ["Batch Job State Change"]
    queues = [
        {"Fn::GetAtt": [logical_id(c.queue), "JobQueueArn"]}
        for c in synthesis.lab.compute.capacities.values()
    ]
    assert rule["EventPattern"]["detail"]["jobQueue"] == queues
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(events.function), "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {
        "Fn::GetAtt": [logical_id(events.dead_letter_queue), "Arn"]
    }
    function = synthesis.templates[COMPUTE]["Resources"][logical_id(events.function)]
    assert function["Properties"]["Handler"] == "lambdas.batch_events.handler"
    assert "TargetArn" in function["Properties"]["DeadLetterConfig"]


def endpoint_service(name: Any) -> str:
    """``ecr.api`` from ``com.amazonaws.<region>.ecr.api`` (a string or its Fn::Join)."""
    if isinstance(name, dict):
        name = "".join(p if isinstance(p, str) else "<region>" for p in name["Fn::Join"][1])
    prefix = "com.amazonaws.<region>."
    assert name.startswith(prefix), name
    return str(name[len(prefix) :])


def test_the_vpc_reaches_aws_through_endpoints_and_has_no_way_out(synthesis: Synthesis) -> None:
    endpoints = synthesis.resources(COMPUTE, "AWS::EC2::VPCEndpoint").values()
    gateway, interface = set(), set()
    for endpoint in endpoints:
        properties = endpoint["Properties"]
        service = endpoint_service(properties["ServiceName"])
        if properties.get("VpcEndpointType", "Gateway") == "Gateway":
            gateway.add(service)
            assert properties["RouteTableIds"], service
        else:
            interface.add(service)
            assert properties["PrivateDnsEnabled"] is True, service
            assert properties["SubnetIds"], service
    assert gateway == {"s3", "dynamodb"}
    assert {"ecr.api", "ecr.dkr", "logs"} <= interface
    assert {"ecs", "ecs-agent", "ecs-telemetry"} <= interface  # the ECS agent on the hosts
    for absent in ("AWS::EC2::NatGateway", "AWS::EC2::InternetGateway", "AWS::EC2::EIP"):
        assert synthesis.resources(COMPUTE, absent) == {}, absent
    subnets = synthesis.resources(COMPUTE, "AWS::EC2::Subnet").values()
    assert subnets
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets)


# --- least privilege ---------------------------------------------------------------


def test_only_the_jobs_function_can_submit_or_stop_batch_jobs(synthesis: Synthesis) -> None:
    template = synthesis.templates[API]
    for group in ("projects", "completions", "system"):
        granted = actions(policies_of_role(template, function_role(synthesis, group)))
        assert not {a for a in granted if a.startswith("batch:")}, group
    jobs = actions(policies_of_role(template, function_role(synthesis, "jobs")))
    assert {"batch:SubmitJob", "batch:TerminateJob", "batch:DescribeJobs"} <= jobs


def test_the_completions_function_cannot_submit_batch_jobs_in_any_stack(
    synthesis: Synthesis,
) -> None:
    completions_role = function_role(synthesis, "completions")
    jobs_role = function_role(synthesis, "jobs")
    submitters = set()
    for template in synthesis.templates.values():
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            statements = resource["Properties"]["PolicyDocument"]["Statement"]
            if "batch:SubmitJob" in actions(statements):
                submitters.update(r["Ref"] for r in resource["Properties"]["Roles"])
    assert completions_role not in submitters
    assert submitters == {jobs_role}


def test_batch_submits_are_scoped_to_the_labs_queues_and_job_definitions(
    synthesis: Synthesis,
) -> None:
    statements = policies_of_role(synthesis.templates[API], function_role(synthesis, "jobs"))
    for statement in statements:
        if "batch:SubmitJob" in actions([statement]):
            assert "*" not in json.dumps(statement["Resource"]), statement


def test_no_policy_grants_a_wildcard_action(synthesis: Synthesis) -> None:
    for stack, template in synthesis.templates.items():
        for resource in template["Resources"].values():
            if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                continue
            for action in actions(resource["Properties"]["PolicyDocument"]["Statement"]):
                assert action != "*", stack
                assert not action.endswith(":*"), (stack, action)


def test_buckets_and_table_are_granted_to_no_function_that_does_not_use_them(
    synthesis: Synthesis,
) -> None:
    template = synthesis.templates[API]
    backups = "AnnotrainStorage-BackupsBucketArn"
    for group in ("projects", "completions", "jobs"):
        text = json.dumps(policies_of_role(template, function_role(synthesis, group)))
        assert backups not in text, group
    assert backups in json.dumps(policies_of_role(template, function_role(synthesis, "system")))
    completions = policies_of_role(template, function_role(synthesis, "completions"))
    data_writes = [
        s
        for s in completions
        if "DataBucketArn" in json.dumps(s["Resource"]) and "s3:PutObject" in actions([s])
    ]
    assert data_writes == []


# --- storage -------------------------------------------------------------------------


def test_the_table_has_pitr_deletion_protection_kms_and_is_retained(synthesis: Synthesis) -> None:
    (table,) = synthesis.resources(STORAGE, "AWS::DynamoDB::Table").values()
    properties = table["Properties"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["DeletionProtectionEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert properties["SSESpecification"]["SSEType"] == "KMS"
    assert table["DeletionPolicy"] == "Retain"
    indexes = {index["IndexName"] for index in properties["GlobalSecondaryIndexes"]}
    assert indexes == {"GSI1", "GSI2"}


def test_no_bucket_is_public_unencrypted_or_reachable_without_tls(synthesis: Synthesis) -> None:
    buckets = 0
    for stack in synthesis.templates:
        policies = synthesis.resources(stack, "AWS::S3::BucketPolicy").values()
        tls_only = {
            json.dumps(p["Properties"]["Bucket"])
            for p in policies
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny"
            and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        }
        for logical, bucket in synthesis.resources(stack, "AWS::S3::Bucket").items():
            buckets += 1
            properties = bucket["Properties"]
            assert properties["PublicAccessBlockConfiguration"] == {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            }, logical
            assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"], logical
            assert json.dumps({"Ref": logical}) in tls_only, logical
            assert bucket["DeletionPolicy"] == "Retain", logical
    assert buckets >= 5


def test_presigned_uploads_never_confirmed_expire_and_nothing_else_does(
    synthesis: Synthesis,
) -> None:
    from annotrain.domain.task_files import image_key, upload_key

    data = synthesis.lab.storage.data_bucket
    properties = synthesis.templates[STORAGE]["Resources"][logical_id(data)]["Properties"]
    rules = properties["LifecycleConfiguration"]["Rules"]
    expiring = [rule for rule in rules if "ExpirationInDays" in rule]
    (uploads,) = expiring
    assert uploads["Status"] == "Enabled"
    assert 1 <= uploads["ExpirationInDays"] <= 2
    assert uploads["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    # S3 filters by prefix, not by pattern: the uploads' keys must start with it, and
    # the checked images (and everything else the lab keeps) must not.
    prefix = uploads.get("Prefix") or uploads["Filter"]["Prefix"]
    upload_id = "0123456789abcdef0123456789abcdef"
    assert upload_key(7, upload_id).startswith(prefix)
    assert not image_key(7, upload_id).startswith(prefix)
    for kept in ("projects/", "snapshots/", "models/", "logs/", "backups/"):
        assert not kept.startswith(prefix), kept


def test_every_bucket_is_versioned_and_has_lifecycle_rules(synthesis: Synthesis) -> None:
    buckets = synthesis.resources(STORAGE, "AWS::S3::Bucket")
    assert len(buckets) == 4  # data, overflow, backups, access logs
    for logical, bucket in buckets.items():
        properties = bucket["Properties"]
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}, logical
        rules = properties["LifecycleConfiguration"]["Rules"]
        assert rules, logical
        assert all(rule["Status"] == "Enabled" for rule in rules), logical
        # Old versions do not pile up for ever.
        assert any("NoncurrentVersionExpiration" in rule for rule in rules), logical


def test_aws_backup_keeps_the_table_and_lab_buckets_daily_in_a_retained_vault(
    synthesis: Synthesis,
) -> None:
    storage = synthesis.lab.storage
    (vault,) = synthesis.resources(STORAGE, "AWS::Backup::BackupVault").values()
    assert vault["DeletionPolicy"] == "Retain"
    assert vault["Properties"]["EncryptionKeyArn"] == {
        "Fn::GetAtt": [logical_id(storage.key), "Arn"]
    }
    (plan,) = synthesis.resources(STORAGE, "AWS::Backup::BackupPlan").values()
    (rule,) = plan["Properties"]["BackupPlan"]["BackupPlanRule"]
    assert rule["ScheduleExpression"].startswith("cron(")
    assert rule["Lifecycle"]["DeleteAfterDays"] >= 7
    (selection,) = synthesis.resources(STORAGE, "AWS::Backup::BackupSelection").values()
    selected = json.dumps(selection["Properties"]["BackupSelection"]["Resources"])
    for resource in (storage.table, storage.data_bucket, storage.overflow_bucket):
        assert logical_id(resource) in selected


def test_lab_buckets_use_the_labs_kms_key(synthesis: Synthesis) -> None:
    storage = synthesis.lab.storage
    resources = synthesis.templates[STORAGE]["Resources"]
    for bucket in (storage.data_bucket, storage.overflow_bucket, storage.backups_bucket):
        rules = resources[logical_id(bucket)]["Properties"]["BucketEncryption"]
        (rule,) = rules["ServerSideEncryptionConfiguration"]
        default = rule["ServerSideEncryptionByDefault"]
        assert default["SSEAlgorithm"] == "aws:kms"
        assert default["KMSMasterKeyID"] == {"Fn::GetAtt": [logical_id(storage.key), "Arn"]}


# --- the functions' environments -------------------------------------------------------


#: Settings a single node has and a serverless function never needs (the Marketplace
#: instance's id, written at its first boot).
SINGLE_NODE_ONLY = frozenset({"instance_id"})
# Only where the web console is served and signs in at the hosted UI.
CONSOLE_ONLY = frozenset({"cognito_domain", "cognito_client_id"})


def serverless_settings(group: str) -> set[str]:
    """What a group's function needs: the mode, every setting without a default that
    every group reads, and the group's own (``lambdas.api.GROUP_SETTINGS``)."""
    from lambdas.api import GPU_SETTINGS, GROUP_SETTINGS

    defaults = Settings.model_construct()
    unset = {
        name
        for name, field in Settings.model_fields.items()
        if getattr(defaults, name) in ("", None)
        and field.is_required() is False
        and name not in SINGLE_NODE_ONLY | CONSOLE_ONLY
    }
    group_only = {name for names in GROUP_SETTINGS.values() for name in names}
    group_only |= set(GPU_SETTINGS)
    needed = (unset - group_only) | set(GROUP_SETTINGS.get(group, ())) | {"mode"}
    return {f"ANNOTRAIN_{name.upper()}" for name in needed}


def function_environment(synthesis: Synthesis, stack: str, function: Any) -> dict[str, Any]:
    resource = synthesis.templates[stack]["Resources"][logical_id(function)]
    environment: dict[str, Any] = resource["Properties"]["Environment"]["Variables"]
    return environment


def test_each_api_function_environment_covers_every_serverless_setting_of_its_group(
    synthesis: Synthesis,
) -> None:
    assert {"ANNOTRAIN_TABLE", "ANNOTRAIN_OVERFLOW_BUCKET", "ANNOTRAIN_DATA_BUCKET"} <= (
        serverless_settings("projects")
    )
    assert {"ANNOTRAIN_CPU_QUEUE", "ANNOTRAIN_JOB_DEFINITION_TRAIN"} <= serverless_settings("jobs")
    assert "ANNOTRAIN_EVENT_BUS" in serverless_settings("completions")
    for group, function in synthesis.lab.api.functions.items():
        environment = function_environment(synthesis, API, function)
        assert serverless_settings(group) <= set(environment), group
        assert environment["ANNOTRAIN_MODE"] == Mode.SERVERLESS.value
    for group in ("projects", "jobs", "system"):
        environment = function_environment(synthesis, API, synthesis.lab.api.functions[group])
        assert "ANNOTRAIN_EVENT_BUS" not in environment, group


def test_the_jobs_function_environment_names_the_stacks_queues_and_job_definitions(
    synthesis: Synthesis,
) -> None:
    environment = function_environment(synthesis, API, synthesis.lab.api.functions["jobs"])
    expected = {"ANNOTRAIN_GPU_QUEUE", "ANNOTRAIN_CPU_QUEUE"}
    expected |= {f"ANNOTRAIN_JOB_DEFINITION_{k.value.upper()}" for k in JobKind}
    expected |= {"ANNOTRAIN_GPU_JOB_DEFINITION_TRAIN", "ANNOTRAIN_GPU_JOB_DEFINITION_PREANNOTATE"}
    assert expected <= set(environment)
    for group in ("projects", "completions", "system"):
        other = function_environment(synthesis, API, synthesis.lab.api.functions[group])
        assert not [name for name in other if "QUEUE" in name or "JOB_DEFINITION" in name]


POWERTOOLS_SETTINGS = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}


def test_the_event_function_environment_has_what_batch_events_reads(synthesis: Synthesis) -> None:
    environment = function_environment(synthesis, COMPUTE, synthesis.lab.compute.events.function)
    assert (
        set(environment) == {"ANNOTRAIN_TABLE", "ANNOTRAIN_OVERFLOW_BUCKET"} | POWERTOOLS_SETTINGS
    )


def every_function(synthesis: Synthesis) -> list[tuple[str, str, Any]]:
    """(stack, service name, function) of every Lambda function of the lab."""
    found = [
        (API, f"annotrain-api-{group}", function)
        for group, function in synthesis.lab.api.functions.items()
    ]
    return [*found, (COMPUTE, "annotrain-job-events", synthesis.lab.compute.events.function)]


def test_every_function_is_traced_and_set_up_for_powertools(synthesis: Synthesis) -> None:
    from infra.monitoring import FAILED_RUNS_METRIC
    from lambdas.observability import NAMESPACE

    functions = every_function(synthesis)
    assert len(functions) == 5
    for stack, service, function in functions:
        properties = synthesis.templates[stack]["Resources"][logical_id(function)]["Properties"]
        assert properties["TracingConfig"] == {"Mode": "Active"}, service
        environment = properties["Environment"]["Variables"]
        assert environment["POWERTOOLS_SERVICE_NAME"] == service
        assert environment["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE == "annotrain"
        assert environment["POWERTOOLS_LOG_LEVEL"] == "INFO"
        # Active tracing: the role may send its segments to X-Ray (and nothing else of X-Ray).
        granted = actions(policies_of_role(synthesis.templates[stack], logical_id(function.role)))
        xray = {a for a in granted if a.startswith("xray:")}
        assert xray == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, service
    (metric_filter,) = synthesis.resources(MONITORING, "AWS::Logs::MetricFilter").values()
    (transformation,) = metric_filter["Properties"]["MetricTransformations"]
    assert (transformation["MetricNamespace"], transformation["MetricName"]) == (
        NAMESPACE, FAILED_RUNS_METRIC,
    )  # fmt: skip


# --- API -------------------------------------------------------------------------------


def test_every_route_of_a_group_goes_to_that_groups_function_behind_the_authorizer(
    synthesis: Synthesis,
) -> None:
    template = synthesis.templates[API]
    integrations = {
        logical: resource["Properties"]["IntegrationUri"]
        for logical, resource in synthesis.resources(API, "AWS::ApiGatewayV2::Integration").items()
    }
    routes = {}
    for resource in synthesis.resources(API, "AWS::ApiGatewayV2::Route").values():
        properties = resource["Properties"]
        integration = properties["Target"]["Fn::Join"][1][1]["Ref"]
        routes[properties["RouteKey"]] = (
            integrations[integration],
            properties.get("AuthorizationType"),
        )
    for group, group_routes in synthesis.lab.api.routes.items():
        function = {"Fn::GetAtt": [logical_id(synthesis.lab.api.functions[group]), "Arn"]}
        assert group_routes, group
        for route in group_routes:
            uri, authorization = routes.pop(f"{route.method} {route.path}")
            assert uri == function, (group, route)
            assert authorization == "JWT", route
    # Without the authorizer: the health check and the web console's files and config.
    system = {"Fn::GetAtt": [logical_id(synthesis.lab.api.functions["system"]), "Arn"]}
    assert routes == {
        f"GET {path}": (system, "NONE")
        for path in ("/health", "/", "/assets/{name}", "/console/config.json")
    }
    assert template["Outputs"]["ApiUrl"]


def test_the_console_signs_in_at_the_hosted_ui_with_the_code_grant_back_to_the_api(
    synthesis: Synthesis,
) -> None:
    (client,) = synthesis.resources(API, "AWS::Cognito::UserPoolClient").values()
    properties = client["Properties"]
    assert properties["GenerateSecret"] is False  # a browser keeps no secret: PKCE instead
    assert properties["AllowedOAuthFlows"] == ["code"]
    assert properties["AllowedOAuthFlowsUserPoolClient"] is True
    assert properties["AllowedOAuthScopes"] == ["openid", "email", "profile"]
    (callback,) = properties["CallbackURLs"]
    assert "HttpApi" in json.dumps(callback)  # the API's own address, where the console is
    (domain,) = synthesis.resources(API, "AWS::Cognito::UserPoolDomain").values()
    assert "annotrain" in json.dumps(domain["Properties"]["Domain"])
    environment = function_environment(synthesis, API, synthesis.lab.api.functions["system"])
    assert {"ANNOTRAIN_COGNITO_DOMAIN", "ANNOTRAIN_COGNITO_CLIENT_ID"} <= set(environment)


def _references(value: Any) -> set[str]:
    """The logical ids a template value refers to (Ref, Fn::GetAtt, Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else str(inner).split(".")[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
            found |= _references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _references(inner)
    return found


def _depends_on(resource: dict[str, Any]) -> set[str]:
    depends = resource.get("DependsOn", [])
    return set(depends if isinstance(depends, list) else [depends])


def _a_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A dependency cycle among the resources, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(edges[node]):
            cycle = visit(target, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for node in sorted(edges):
        cycle = visit(node, [])
        if cycle:
            return cycle
    return None


def test_no_stack_has_a_dependency_cycle(synthesis: Synthesis) -> None:
    # The console's client refers to the API's address while the API's authorizer
    # refers to the client: CloudFormation would refuse a cycle only at deploy time.
    for name, template in synthesis.templates.items():
        resources = template.get("Resources", {})
        edges = {
            logical: (_references(r.get("Properties", {})) | _depends_on(r)) & set(resources)
            for logical, r in resources.items()
        }
        assert _a_cycle(edges) is None, (name, _a_cycle(edges))


def test_the_api_stage_throttles_and_logs_access(synthesis: Synthesis) -> None:
    (stage,) = synthesis.resources(API, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] > 0
    assert settings["ThrottlingBurstLimit"] > 0
    assert "DestinationArn" in stage["Properties"]["AccessLogSettings"]


def test_the_user_pool_has_admin_and_user_groups_and_requires_mfa(synthesis: Synthesis) -> None:
    groups = synthesis.resources(API, "AWS::Cognito::UserPoolGroup").values()
    assert {g["Properties"]["GroupName"] for g in groups} == {"admin", "user"}
    (pool,) = synthesis.resources(API, "AWS::Cognito::UserPool").values()
    assert pool["Properties"]["MfaConfiguration"] == "ON"
    assert pool["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True


# --- monitoring ----------------------------------------------------------------------


def test_alarms_cover_failed_runs_dead_letters_and_every_functions_errors_and_throttles(
    synthesis: Synthesis,
) -> None:
    alarms = set(synthesis.lab.monitoring.alarms)
    functions = [f"Api{g.capitalize()}" for g in synthesis.lab.api.functions] + ["JobEvents"]
    expected = {"FailedRuns", "JobEventDeadLetters", "LabEventDeadLetters"}
    expected |= {f"{name}{what}" for name in functions for what in ("Errors", "Throttles")}
    assert alarms == expected
    for alarm in synthesis.resources(MONITORING, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"], "every alarm notifies the topic"
    (metric_filter,) = synthesis.resources(MONITORING, "AWS::Logs::MetricFilter").values()
    assert metric_filter["Properties"]["FilterPattern"] == '{ $.run_status = "failed" }'


# --- assets ----------------------------------------------------------------------------


def lambda_asset_dir(synthesis: Synthesis) -> Path:
    resource = synthesis.templates[API]["Resources"][
        logical_id(synthesis.lab.api.functions["completions"])
    ]
    key = resource["Properties"]["Code"]["S3Key"]
    return synthesis.outdir / f"asset.{key.removesuffix('.zip')}"


def test_the_lambda_bundle_holds_the_api_for_linux_python_312_without_torch_or_jobs(
    synthesis: Synthesis,
) -> None:
    bundle = lambda_asset_dir(synthesis)
    assert (bundle / "lambdas" / "api.py").is_file()
    assert (bundle / "annotrain" / "adapters" / "dynamodb.py").is_file()
    assert (bundle / "fastapi").is_dir()
    assert (bundle / "mangum").is_dir()
    assert (bundle / "aws_lambda_powertools").is_dir()  # lambdas/observability.py
    assert (bundle / "aws_xray_sdk").is_dir()  # its Tracer, in the job-state function
    assert not (bundle / "batch_jobs").exists()
    assert not (bundle / "torch").exists()
    assert not (bundle / "transformers").exists()
    assert not (bundle / "uvicorn").exists()
    (extension,) = (bundle / "pydantic_core").glob("_pydantic_core*.so")
    assert extension.name.endswith("cpython-312-x86_64-linux-gnu.so")
    assert not list(bundle.rglob("*.pyc")), "--no-compile: Lambda compiles on first import"


def test_the_job_images_are_staged_at_synth_from_their_dockerfiles(synthesis: Synthesis) -> None:
    manifest = json.loads((synthesis.outdir / f"{COMPUTE}.assets.json").read_text())
    images = {
        image["source"]["dockerFile"]: synthesis.outdir / image["source"]["directory"]
        for image in manifest["dockerImages"].values()
    }
    assert set(images) == {"batch_jobs/Dockerfile.gpu", "batch_jobs/Dockerfile.cpu"}
    for dockerfile, context in images.items():
        assert (context / dockerfile).is_file()
        assert (context / "annotrain" / "settings.py").is_file()
        assert (context / "constraints.txt").is_file()
        assert not (context / ".venv").exists()
        assert not (context / "tests").exists()
        text = (context / dockerfile).read_text()
        assert "USER annotrain" in text
        assert '"python", "-m"' in text


# --- lint, nag, CLI ---------------------------------------------------------------------


def test_cdk_json_sets_every_feature_flag_to_its_recommended_value(synthesis: Synthesis) -> None:
    """The pinned aws-cdk-lib reports each flag: recommended, set in cdk.json, or its default."""
    manifest = json.loads((synthesis.outdir / "manifest.json").read_text())
    (report,) = [
        a for a in manifest["artifacts"].values() if a["type"] == "cdk:feature-flag-report"
    ]
    flags = report["properties"]["flags"]
    assert len(flags) > 50
    off_recommendation = {}
    for name, flag in flags.items():
        if "recommendedValue" not in flag:
            continue
        # Unset, a flag behaves as its v2 default, or as off where it has none.
        effective = flag.get("userValue", flag.get("unconfiguredBehavesLike", {}).get("v2", False))
        if effective != flag["recommendedValue"]:
            off_recommendation[name] = (effective, flag["recommendedValue"])
    assert off_recommendation == {}


def test_cfn_lint_finds_no_errors_in_any_template(synthesis: Synthesis) -> None:
    from cfnlint.api import ManualArgs, lint_file

    errors = []
    for stack in synthesis.templates:
        path = synthesis.outdir / f"{stack}.template.json"
        matches = lint_file(path, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
        errors += [f"{stack}: {m}" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


def test_cdk_nag_finds_nothing_unacknowledged(synthesis: Synthesis) -> None:
    from cdk_nag import AwsSolutionsChecks

    report = AwsSolutionsChecks().validate_scope(synthesis.app)
    findings = [
        f"{v.rule_name}: {[r.construct_path for r in v.violating_resources]}"
        for v in report.violations
    ]
    assert findings == []


def test_cdk_nag_does_report_an_unacknowledged_finding() -> None:
    """The check above can fail: the same pack flags a bucket that accepts plain HTTP."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    app = App()
    s3.Bucket(Stack(app, "Probe"), "Plain")
    rules = {v.rule_name for v in AwsSolutionsChecks().validate_scope(app).violations}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_the_pinned_cdk_cli_reads_the_cloud_assembly(synthesis: Synthesis) -> None:
    cli = ROOT / "infra" / "node_modules" / ".bin" / "cdk"
    if not cli.exists():
        pytest.skip("the pinned CDK CLI is not installed (make infra-cli)")
    assert shutil.which("node"), "node runs the CDK CLI"
    result = subprocess.run(
        [str(cli), "ls", "--app", str(synthesis.outdir), "--no-notices", "--no-version-reporting"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={
            "PATH": str(Path(shutil.which("node") or "node").parent),
            "CDK_DISABLE_CLI_TELEMETRY": "true",
        },
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == set(synthesis.templates)


# --- events between functions ----------------------------------------------------------


def test_the_completions_function_may_only_put_events_on_the_labs_bus(
    synthesis: Synthesis,
) -> None:
    from annotrain.adapters.eventbridge import COMPLETION_SUBMITTED, SOURCE

    template = synthesis.templates[API]
    bus = logical_id(synthesis.lab.api.events.bus)
    completions = policies_of_role(template, function_role(synthesis, "completions"))
    event_rights = [s for s in completions if any(a.startswith("events:") for a in actions([s]))]
    assert [(actions([s]), s["Resource"]) for s in event_rights] == [
        ({"events:PutEvents"}, {"Fn::GetAtt": [bus, "Arn"]})
    ]
    environment = function_environment(synthesis, API, synthesis.lab.api.functions["completions"])
    assert environment["ANNOTRAIN_EVENT_BUS"] == {"Ref": bus}
    # Nobody else puts events: the jobs function is told, it does not tell.
    for stack, stack_template in synthesis.templates.items():
        for resource in stack_template["Resources"].values():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            if "events:PutEvents" in actions(resource["Properties"]["PolicyDocument"]["Statement"]):
                roles = [r["Ref"] for r in resource["Properties"]["Roles"]]
                assert (stack, roles) == (API, [function_role(synthesis, "completions")])
    rule = template["Resources"][logical_id(synthesis.lab.api.events.rule)]["Properties"]
    assert rule["EventPattern"] == {"source": [SOURCE], "detail-type": [COMPLETION_SUBMITTED]}


def test_submitted_completions_reach_the_jobs_function_with_a_dead_letter_queue(
    synthesis: Synthesis,
) -> None:
    template = synthesis.templates[API]
    lab_events = synthesis.lab.api.events
    jobs = logical_id(synthesis.lab.api.functions["jobs"])
    queue = logical_id(lab_events.dead_letter_queue)
    rule = template["Resources"][logical_id(lab_events.rule)]["Properties"]
    assert rule["EventBusName"] == {"Ref": logical_id(lab_events.bus)}
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [jobs, "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    (invoke_config,) = synthesis.resources(API, "AWS::Lambda::EventInvokeConfig").values()
    properties = invoke_config["Properties"]
    assert properties["FunctionName"] == {"Ref": jobs}
    assert properties["DestinationConfig"]["OnFailure"] == {
        "Destination": {"Fn::GetAtt": [queue, "Arn"]}
    }
    permissions = [
        p["Properties"]
        for p in synthesis.resources(API, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
    ]
    assert [(p["FunctionName"], p["SourceArn"]) for p in permissions] == [
        ({"Fn::GetAtt": [jobs, "Arn"]}, {"Fn::GetAtt": [logical_id(lab_events.rule), "Arn"]})
    ]
