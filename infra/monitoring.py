"""The Monitoring stack: alarms on failed runs, function errors and throttles, and dead letters."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.observability import METRICS_NAMESPACE

FAILED_RUNS_METRIC = "FailedRuns"


class MonitoringStack(Stack):
    """Alarms, and the topic they notify.

    A failed run is counted from the job-state function's log: it writes one JSON
    line per event (``lambdas/batch_events.py``), and a metric filter counts those
    whose ``run_status`` is ``failed``.

    Attributes:
        topic: The SNS topic every alarm notifies.
        alarms: The alarms, by name.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        job_events_log_group: logs.ILogGroup,
        dead_letter_queue: sqs.IQueue,
        lab_events_dead_letter_queue: sqs.IQueue,
        alarm_email: str | None,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        key = kms.Key(
            self,
            "AlarmsKey",
            description="annotrain: the alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # CloudWatch publishes alarms to the encrypted topic: it needs the key.
        key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        self.topic = sns.Topic(self, "Alarms", master_key=key, enforce_ssl=True)
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        failed_runs = logs.MetricFilter(
            self,
            "FailedRunsFilter",
            log_group=job_events_log_group,
            filter_pattern=logs.FilterPattern.string_value("$.run_status", "=", "failed"),
            metric_namespace=METRICS_NAMESPACE,
            metric_name=FAILED_RUNS_METRIC,
            metric_value="1",
            default_value=0,
        )
        self._alarm(
            "FailedRuns",
            failed_runs.metric(statistic="Sum", period=Duration.minutes(5)),
            "A training, pre-annotation or OCR run failed (its reason is on the run).",
        )
        self._alarm(
            "JobEventDeadLetters",
            dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            "Job-state events could not be applied: runs may show a stale status.",
        )
        self._alarm(
            "LabEventDeadLetters",
            lab_events_dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            "Submitted completions did not reach active learning: a training may not have "
            "started at its threshold.",
        )
        for name, function in functions.items():
            self._alarm(
                f"{name}Errors",
                function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
                f"The {name} function raised errors.",
            )
            self._alarm(
                f"{name}Throttles",
                function.metric_throttles(period=Duration.minutes(5), statistic="Sum"),
                f"The {name} function was throttled (account or reserved concurrency).",
            )

    def _alarm(self, name: str, metric: cloudwatch.IMetric, description: str) -> None:
        alarm = cloudwatch.Alarm(
            self,
            name,
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.alarms[name] = alarm
