"""The Api stack: Cognito, the HTTP API and its four Lambda function groups.

Routes are read from the FastAPI routers each function mounts
(``lambdas.api.ROUTER_GROUPS``), so API Gateway sends a path only to the
function that serves it, and each function's role holds only its group's rights:
the completions function can read and write records but cannot submit a Batch
job; only the jobs function can.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jsii
from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_batch as batch
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from annotrain.adapters.eventbridge import COMPLETION_SUBMITTED, SOURCE
from annotrain.domain.records import JobKind
from infra.compute import acknowledge_function_role
from infra.config import ApiThrottle, LabConfig
from infra.console import LabConsole
from infra.lambda_asset import RUNTIME, LambdaAsset
from infra.log_groups import lab_log_group
from infra.nag import Ack, acknowledge
from infra.observability import powertools_environment
from infra.storage import StorageRefs, StorageStack

ADMIN_GROUP = "admin"
USER_GROUP = "user"
# FastAPI's `{name:path}` is API Gateway's greedy `{name+}`.
_PATH_PARAMETER = re.compile(r"\{(\w+):path\}")


@dataclass(frozen=True, slots=True)
class Route:
    """One API Gateway route: a method and a path, in API Gateway's syntax."""

    method: str
    path: str


def group_routes(group: str) -> list[Route]:
    """The routes a function group serves, read from the routers it mounts.

    Args:
        group: ``projects``, ``completions``, ``jobs`` or ``system``.
    """
    from fastapi.routing import APIRoute

    from annotrain.api.app import API_PREFIX
    from lambdas.api import ROUTER_GROUPS

    routes: set[Route] = set()
    for router in ROUTER_GROUPS[group]():
        for route in router.routes:
            if isinstance(route, APIRoute):
                path = _PATH_PARAMETER.sub(r"{\1+}", API_PREFIX + route.path)
                routes.update(Route(method, path) for method in route.methods or ())
    return sorted(routes, key=lambda r: (r.path, r.method))


@dataclass(frozen=True, slots=True)
class BatchTargets:
    """What the jobs function submits to: the queues and job definitions of the Compute stack.

    Attributes:
        queues: The job queue of each profile (``cpu``, and ``gpu`` when the lab has
            GPUs: without it, the jobs function refuses runs that ask for one).
        job_definitions: The CPU job definition of each kind.
        gpu_job_definitions: The GPU job definition of each kind that has one.
    """

    queues: Mapping[str, batch.IJobQueue]
    job_definitions: Mapping[JobKind, batch.EcsJobDefinition]
    gpu_job_definitions: Mapping[JobKind, batch.EcsJobDefinition] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """The names the jobs function's job runner is built from."""
        env = {
            f"ANNOTRAIN_{name.upper()}_QUEUE": q.job_queue_arn for name, q in self.queues.items()
        }
        for kind, definition in self.job_definitions.items():
            env[f"ANNOTRAIN_JOB_DEFINITION_{kind.value.upper()}"] = definition.job_definition_arn
        for kind, definition in self.gpu_job_definitions.items():
            env[f"ANNOTRAIN_GPU_JOB_DEFINITION_{kind.value.upper()}"] = (
                definition.job_definition_arn
            )
        return env


class LabUsers(Construct):
    """The Cognito user pool: admins and users, MFA required, and the web client.

    Attributes:
        user_pool: The pool.
        client: The app client whose tokens the HTTP API accepts.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self,
            "Pool",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
            ),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.user_pool,
            Ack(
                "AwsSolutions-COG8",
                "The Plus plan (threat protection) is a per-user cost the operator opts "
                "into (docs/deploy.md); MFA is required and self sign-up is off.",
            ),
        )
        for group, description in (
            (ADMIN_GROUP, "Lab admins: every project, users, licenses, backups"),
            (USER_GROUP, "Lab users: the projects they are members of"),
        ):
            cognito.CfnUserPoolGroup(
                self,
                f"{group.capitalize()}Group",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=group,
                description=description,
            )
        self.client = self.user_pool.add_client(
            "WebClient",
            auth_flows=cognito.AuthFlow(user_srp=True),
            generate_secret=False,
            prevent_user_existence_errors=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
        )


class ApiFunction(Construct):
    """One Lambda function group: Mangum over the group's routers.

    Attributes:
        function: The function.
        log_group: Its log group.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        group: str,
        code: lambda_.Code,
        environment: Mapping[str, str],
        storage: StorageRefs,
        memory_mib: int,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = lab_log_group(self, "Logs", retention_days=log_retention_days)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            handler=f"lambdas.api.{group}_handler",
            code=code,
            memory_size=memory_mib,
            # API Gateway gives up on an integration after 30 s.
            timeout=Duration.seconds(29),
            environment=dict(environment),
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            description=f"annotrain API: the {group} routes",
        )
        acknowledge_function_role(self.function, storage)


class LabEvents(Construct):
    """The lab's event bus: the completions function puts, the jobs function is told.

    A rule sends each ``CompletionSubmitted`` to the jobs function (active
    learning). Events EventBridge could not deliver, and invocations that failed
    after Lambda's retries, land in a dead-letter queue.

    Attributes:
        bus: The event bus.
        rule: The ``CompletionSubmitted`` rule.
        dead_letter_queue: Events that could not be applied.
    """

    def __init__(self, scope: Construct, construct_id: str, *, target: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", description="annotrain: completions → trainings")
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letter_queue,
            Ack(
                "AwsSolutions-SQS3",
                "This queue is the dead-letter queue of the lab's events; it has none itself.",
            ),
        )
        self.rule = events.Rule(
            self,
            "CompletionSubmitted",
            event_bus=self.bus,
            description="annotrain: submitted completions → active learning (jobs function)",
            event_pattern=events.EventPattern(source=[SOURCE], detail_type=[COMPLETION_SUBMITTED]),
            targets=[
                targets.LambdaFunction(
                    target,
                    dead_letter_queue=self.dead_letter_queue,
                    max_event_age=Duration.hours(6),
                    retry_attempts=20,
                )
            ],
        )


class ApiStack(Stack):
    """Cognito, the HTTP API with its JWT authorizer, and the four function groups.

    Attributes:
        users: The user pool and its client.
        http_api: The HTTP API.
        functions: The function of each group (``projects``, ``completions``, ``jobs``, ``system``).
        routes: The routes of each group.
        events: The lab's event bus, its rule to the jobs function and their dead letters.
        console: The web console's routes, the hosted-UI domain, the client's code grant.
    """

    GROUPS: Sequence[str] = ("projects", "completions", "jobs", "system")

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LabConfig,
        storage_stack: StorageStack,
        batch_targets: BatchTargets,
        lambda_asset: LambdaAsset,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        storage = StorageRefs.imported(self, storage=storage_stack)
        self.users = LabUsers(self, "Users")
        code = lambda_asset.code()
        settings = {
            "ANNOTRAIN_MODE": "serverless",
            "ANNOTRAIN_TABLE": storage.table.table_name,
            "ANNOTRAIN_OVERFLOW_BUCKET": storage.overflow_bucket.bucket_name,
            "ANNOTRAIN_DATA_BUCKET": storage.data_bucket.bucket_name,
        }
        self.functions: dict[str, lambda_.Function] = {}
        for group in self.GROUPS:
            environment = dict(settings)
            environment |= powertools_environment(
                f"annotrain-api-{group}", log_level=config.log_level
            )
            if group == "jobs":
                environment.update(batch_targets.environment())
            self.functions[group] = ApiFunction(
                self,
                f"{group.capitalize()}Api",
                group=group,
                code=code,
                environment=environment,
                storage=storage,
                memory_mib=config.lambda_memory_mib,
                log_retention_days=config.log_retention_days,
            ).function
        self.events = LabEvents(self, "Events", target=self.functions["jobs"])
        self.functions["completions"].add_environment(
            "ANNOTRAIN_EVENT_BUS", self.events.bus.event_bus_name
        )
        # The completions function's one right beyond records: putting events on this bus.
        self.events.bus.grant_put_events_to(self.functions["completions"])
        self.functions["jobs"].configure_async_invoke(
            on_failure=destinations.SqsDestination(self.events.dead_letter_queue),
            retry_attempts=2,
            max_event_age=Duration.hours(6),
        )
        self._grant(storage, batch_targets)
        self.routes = {group: group_routes(group) for group in self.GROUPS}
        self.http_api = self._http_api(config.throttle, config.log_retention_days)
        # The web console at the API's root, signing in at the user pool's hosted UI.
        self.console = LabConsole(
            self, "Console", user_pool=self.users.user_pool, client=self.users.client,
            http_api=self.http_api, function=self.functions["system"],
        )  # fmt: skip
        CfnOutput(self, "ApiUrl", value=self.http_api.api_endpoint)
        CfnOutput(self, "UserPoolId", value=self.users.user_pool.user_pool_id)
        CfnOutput(self, "UserPoolClientId", value=self.users.client.user_pool_client_id)

    def _grant(self, storage: StorageRefs, targets: BatchTargets) -> None:
        for function in self.functions.values():
            storage.table.grant_read_write_data(function)
            storage.overflow_bucket.grant_read_write(function)
        projects, completions = self.functions["projects"], self.functions["completions"]
        jobs, system = self.functions["jobs"], self.functions["system"]
        storage.data_bucket.grant_read_write(projects)  # task files, exports
        storage.data_bucket.grant_read(completions)  # task files shown beside completions
        storage.data_bucket.grant_read_write(jobs)  # snapshots, models, run logs
        storage.data_bucket.grant_read(system)  # backups read the lab's files
        storage.backups_bucket.grant_read_write(system)
        # Only the jobs group submits, stops and describes Batch jobs.
        definitions = [*targets.job_definitions.values(), *targets.gpu_job_definitions.values()]
        for queue in {id(q): q for q in targets.queues.values()}.values():
            for definition in definitions:
                definition.grant_submit_job(jobs, queue)
        stack = Stack.of(self)
        job_arn = stack.format_arn(service="batch", resource="job", resource_name="*")
        jobs.add_to_role_policy(
            iam.PolicyStatement(
                actions=["batch:TerminateJob"],
                resources=[job_arn],
            )
        )
        jobs.add_to_role_policy(
            iam.PolicyStatement(
                # SubmitJob with tags (annotrain:run-id…) needs TagResource on the new job.
                actions=["batch:TagResource"],
                resources=[job_arn],
                conditions={"StringEquals": {"batch:CreateAction": "SubmitJob"}},
            )
        )
        jobs.add_to_role_policy(
            # DescribeJobs has no resource-level permissions: AWS accepts only "*".
            iam.PolicyStatement(actions=["batch:DescribeJobs"], resources=["*"])
        )
        acknowledge(
            jobs,
            Ack(
                "AwsSolutions-IAM5",
                "Batch job ids are made by SubmitJob, so TerminateJob and the tagging at "
                "submit name job/* of this account and region (TagResource only on create); "
                "DescribeJobs accepts only Resource *.",
                findings=[
                    "Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job/*"
                ],
            ),
        )

    def _http_api(self, throttle: ApiThrottle, log_retention_days: int) -> apigw.HttpApi:
        authorizer = authorizers.HttpUserPoolAuthorizer(
            "Cognito",
            self.users.user_pool,
            user_pool_clients=[self.users.client],
        )
        api = apigw.HttpApi(
            self,
            "HttpApi",
            description="annotrain /api/v1",
            create_default_stage=False,
            default_authorizer=authorizer,
        )
        access_logs = lab_log_group(self, "AccessLogs", retention_days=log_retention_days)
        stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=throttle.rate_per_second, burst_limit=throttle.burst
            ),
            access_log_settings=_AccessLogs(apigw.LogGroupLogDestination(access_logs)),
        )
        del stage
        for group, routes in self.routes.items():
            integration = integrations.HttpLambdaIntegration(
                f"{group.capitalize()}Integration", self.functions[group]
            )
            for route in routes:
                api.add_routes(
                    path=route.path,
                    methods=[apigw.HttpMethod(route.method)],
                    integration=integration,
                )
        health = api.add_routes(
            path="/health",
            methods=[apigw.HttpMethod.GET],
            integration=integrations.HttpLambdaIntegration(
                "HealthIntegration", self.functions["system"]
            ),
            authorizer=apigw.HttpNoneAuthorizer(),
        )
        for http_route in health:
            acknowledge(
                http_route,
                Ack(
                    "AwsSolutions-APIG4",
                    "GET /health answers {'status': 'ok'} to load balancers and probes, "
                    "without an identity by design (docs/api.md).",
                ),
            )
        return api


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogs:
    """The stage's access log settings: a log group, one JSON line per request."""

    def __init__(self, destination: apigw.IAccessLogDestination) -> None:
        self._destination = destination

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigateway.AccessLogFormat:
        return apigateway.AccessLogFormat.custom(_ACCESS_LOG_FORMAT)


# API Gateway's access log line: who, what, how it ended, how long it took.
_ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
    '"user":"$context.authorizer.claims.username","method":"$context.httpMethod",'
    '"path":"$context.path","status":"$context.status","latencyMs":"$context.responseLatency",'
    '"integrationError":"$context.integrationErrorMessage"}'
)
