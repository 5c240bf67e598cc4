"""The jobs and system Lambda functions serve the job, license and backup routes."""

from __future__ import annotations

from typing import Any

from test_api_lambdas import _invoke, lambdas  # noqa: F401 - the fixture


def test_the_jobs_function_serves_trainings_models_preannotations_and_servers(
    lambdas: Any,  # noqa: F811
) -> None:
    status, body = _invoke(lambdas.jobs_handler, "GET", "/api/v1/servers")
    assert (status, body["items"]) == (200, [])
    assert [c["server_class"] for c in body["capacity"]] == ["training", "preannotation"]
    status, body = _invoke(lambdas.jobs_handler, "GET", "/api/v1/models")
    assert (status, body) == (200, {"items": []})
    # The jobs function has its Batch runner; an unknown run is not found before it is asked.
    assert _invoke(lambdas.jobs_handler, "POST", "/api/v1/servers/r1/stop")[0] == 404
    assert _invoke(lambdas.jobs_handler, "GET", "/api/v1/system")[0] == 404


def test_the_system_function_serves_licenses_and_backups_to_admins_only(
    lambdas: Any,  # noqa: F811
) -> None:
    assert _invoke(lambdas.system_handler, "GET", "/api/v1/licenses")[0] == 403
    assert _invoke(lambdas.system_handler, "GET", "/api/v1/backups")[0] == 403
    assert _invoke(lambdas.system_handler, "GET", "/api/v1/servers")[0] == 404


def test_only_the_jobs_function_has_a_job_runner_and_the_completions_one_publishes_to_the_bus(
    lambdas: Any,  # noqa: F811
) -> None:
    from annotrain.adapters.batch import BatchJobRunner
    from annotrain.adapters.eventbridge import EventBridgeEvents

    assert isinstance(lambdas._app("jobs").state.runner, BatchJobRunner)
    for group in ("projects", "completions", "system"):
        assert lambdas._app(group).state.runner is None, group
    assert isinstance(lambdas._app("completions").state.events, EventBridgeEvents)
