"""One synthesis of the whole CDK app per test session: every infra test reads it.

(And one more, with GPUs off, that only the tests of that configuration read.)

Synth is the expensive part (about 20 s on two cores, the Lambda bundle cached in
``.build/``); tests read the templates and the construct tree it left.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from infra_synthesis import ROOT, Synthesis


def _synthesize(outdir: Path, context: dict[str, Any], *, nag: bool) -> Synthesis:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from aws_cdk import App

    from infra.app import build_lab

    app = App(outdir=str(outdir), context=context)
    lab = build_lab(app, root=ROOT, nag=nag)
    assembly = app.synth()
    templates = {
        stack.stack_name: json.loads(Path(stack.template_full_path).read_text())
        for stack in assembly.stacks
    }
    return Synthesis(app=app, lab=lab, outdir=outdir, templates=templates)


@pytest.fixture(scope="session")
def synthesis(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    """Synthesize the app once, as ``cdk synth`` would (context from cdk.json, cdk-nag on)."""
    from infra.app import cdk_json_context

    return _synthesize(tmp_path_factory.mktemp("cdk.out"), cdk_json_context(ROOT), nag=True)


#: The lab without GPUs, its CPU capacity on Spot: ``cdk.json`` context as an operator sets it.
CPU_ONLY = {"gpu": {"enabled": False}, "cpu": {"spot": True}}


@pytest.fixture(scope="session")
def cpu_only_synthesis(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    """The app synthesized with GPUs off (a second synth: only the tests of that case read it)."""
    from infra.app import cdk_json_context

    context = cdk_json_context(ROOT)
    context["annotrain"] = {**context["annotrain"], **CPU_ONLY}
    return _synthesize(tmp_path_factory.mktemp("cdk.out.cpu"), context, nag=False)
