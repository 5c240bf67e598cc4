"""One synthesis of the whole CDK app per test session: every infra test reads it.

Synth is the expensive part (about 20 s on two cores, the Lambda bundle cached in
``.build/``); tests read the templates and the construct tree it left.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from infra_synthesis import ROOT, Synthesis


@pytest.fixture(scope="session")
def synthesis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesis]:
    """Synthesize the app once, as ``cdk synth`` would (context from cdk.json, cdk-nag on)."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from aws_cdk import App

    from infra.app import build_lab, cdk_json_context

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(outdir=str(outdir), context=cdk_json_context(ROOT))
    lab = build_lab(app, root=ROOT)
    assembly = app.synth()
    templates = {
        stack.stack_name: json.loads(Path(stack.template_full_path).read_text())
        for stack in assembly.stacks
    }
    return Synthesis(app=app, lab=lab, outdir=outdir, templates=templates)
