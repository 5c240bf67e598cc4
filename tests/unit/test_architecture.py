"""Dependencies point inward: the domain imports nothing but itself and the standard library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "annotrain" / "domain"
# The one third-party package the domain may use: safe XML parsing.
DOMAIN_MAY_IMPORT = {"defusedxml"}
NEVER_IN_THE_CORE = ("torch", "transformers", "boto3", "botocore", "aws_cdk", "fastapi")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_imports_only_itself_the_standard_library_and_defusedxml() -> None:
    offenders = {}
    for path in sorted(DOMAIN.glob("*.py")):
        for module in _imported_modules(path):
            top = module.split(".")[0]
            inside_domain = module == "annotrain.domain" or module.startswith("annotrain.domain.")
            allowed = inside_domain or top in sys.stdlib_module_names or top in DOMAIN_MAY_IMPORT
            if not allowed:
                offenders.setdefault(path.name, []).append(module)
    assert offenders == {}


def test_importing_the_cli_loads_no_heavy_or_cloud_package() -> None:
    code = (
        "import sys, annotrain.cli; "
        f"print(','.join(m for m in {NEVER_IN_THE_CORE!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""
