"""The checked-in OpenAPI document against the app: schemathesis over every operation.

docs/openapi.json (not the app's live document: what clients read is what is
checked) drives schemathesis, in process over ASGI, as a lab admin and as a plain
member (an Annotator). Every answer must be documented: its status code, its
content type, its body's schema and headers; invalid input must be refused with a
4xx; and no answer may be a 5xx but a 501 the operation documents (the routes whose
feature has not landed yet).

Path parameters are drawn half the time from the lab's own ids (its project, task,
completions, members), so the runs reach the routes' real work and not only their
404s. Deterministic (derandomized) and bounded: a few dozen examples per operation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from conftest import Lab
from fake_runner import RecordingRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import CheckContext
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from annotrain.domain.tasks import Completion, CompletionState

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "docs" / "openapi.json"
EXAMPLES_PER_OPERATION = 15

SCHEMA = schemathesis.openapi.from_path(CHECKED_IN)
SCHEMA.config.generation.update(max_examples=EXAMPLES_PER_OPERATION)

#: The lab's own ids (a fresh database numbers from 1): see ``fuzzed_lab``.
KNOWN_PATH_VALUES: dict[str, tuple[Any, ...]] = {
    "project_id": (1,),
    "task_id": (1,),
    "completion_id": (1, 2),
    "member": ("newbie", "manager", "owner", "annotator"),
}


def _with_known_ids(case: schemathesis.Case) -> st.SearchStrategy[schemathesis.Case]:
    names = [name for name in case.path_parameters or {} if name in KNOWN_PATH_VALUES]
    if not names or (case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH)):
        # Negative cases keep their invalid ids: they are what is being tested.
        return st.just(case)

    def known(drawn: tuple[Any, ...]) -> schemathesis.Case:
        case.path_parameters = {**case.path_parameters, **dict(zip(names, drawn, strict=True))}
        return case

    values = st.tuples(*(st.sampled_from(KNOWN_PATH_VALUES[name]) for name in names))
    return st.one_of(st.just(case), values.map(known))


@SCHEMA.hook
def flatmap_case(
    context: schemathesis.HookContext, case: schemathesis.Case
) -> st.SearchStrategy[schemathesis.Case]:
    return _with_known_ids(case)


@schemathesis.check
def no_server_error_but_a_documented_501(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """No 5xx, but the 501 of an operation that documents it (features not landed yet)."""
    status = response.status_code
    documented = case.operation.definition.raw.get("responses", {})
    if status >= 500 and not (status == 501 and "501" in documented):
        raise AssertionError(f"{status} from {case.operation.label}: {response.text[:500]}")
    return None


CHECKS = [
    no_server_error_but_a_documented_501,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


@pytest.fixture
def fuzzed_lab(lab: Lab) -> Lab:
    """The lab with the annotator's submitted completion (id 1) and draft (id 2), and a
    job runner that records what it is given (so the job routes reach their work)."""
    ids = [
        lab.store.add_completion(
            lab.project_id, lab.task_id, Completion(None, (), author="annotator", state=state)
        ).id
        for state in (CompletionState.SUBMITTED, CompletionState.DRAFT)
    ]
    # The ids KNOWN_PATH_VALUES draws from.
    assert (lab.project_id, lab.task_id, ids) == (1, 1, [1, 2])
    lab.client.app.state.runner = RecordingRunner(lab.store)  # type: ignore[attr-defined]
    return lab


@SCHEMA.parametrize()
@settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much],
)  # fmt: skip
@pytest.mark.parametrize("role", ["admin", "annotator"])
def test_every_answer_is_documented_and_none_is_a_server_error(
    case: schemathesis.Case, fuzzed_lab: Lab, role: str
) -> None:
    case.call_and_validate(headers=fuzzed_lab.auth(role), app=fuzzed_lab.client.app, checks=CHECKS)
