"""The synthesized lab as the infra tests read it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Synthesis:
    """The synthesized lab: the app, its stacks and their templates.

    Attributes:
        app: The CDK app (its construct tree, for cdk-nag).
        lab: The stacks (``infra.app.LabStacks``).
        outdir: The cloud assembly folder.
        templates: Each stack's template, by stack name.
    """

    app: Any
    lab: Any
    outdir: Path
    templates: dict[str, dict[str, Any]]

    def resources(self, stack: str, type_name: str) -> dict[str, dict[str, Any]]:
        """The resources of ``type_name`` in ``stack``'s template, by logical id."""
        return {
            logical_id: resource
            for logical_id, resource in self.templates[stack]["Resources"].items()
            if resource["Type"] == type_name
        }
