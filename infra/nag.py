"""cdk-nag acknowledgments: each names its rule, its findings and why, next to the resource.

cdk-nag 3.x reads CDK's own acknowledgments (``Validations.of(scope).acknowledge``)
on a resource or any construct above it. A rule with several findings on one
resource (``AwsSolutions-IAM5``: one per wildcard) is acknowledged finding by
finding: ``AwsSolutions-IAM5[Action::s3:List*]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledged cdk-nag rule.

    Attributes:
        rule: The rule id (``AwsSolutions-IAM5``).
        reason: Why the finding is accepted here.
        findings: For rules with one finding per policy entry, the entries
            acknowledged (``Action::s3:List*``); empty for a rule with one finding.
    """

    rule: str
    reason: str
    findings: Sequence[str] = ()

    @property
    def ids(self) -> list[str]:
        """The acknowledgment ids cdk-nag matches: ``rule`` or ``rule[finding]`` each."""
        return [f"{self.rule}[{f}]" for f in self.findings] or [self.rule]


def acknowledge(construct: IConstruct, *acks: Ack) -> None:
    """Acknowledge findings on ``construct`` and everything it contains."""
    Validations.of(construct).acknowledge(
        *(Acknowledgment(id=rule_id, reason=a.reason) for a in acks for rule_id in a.ids)
    )
