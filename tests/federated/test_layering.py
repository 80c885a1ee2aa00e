"""federated/ is a library: no HTTP, no import of node/ or connectors/ (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import federated

FORBIDDEN = ("node", "connectors", "flask", "httpx", "requests", "socket", "urllib", "http")


def test_federated_imports_no_upper_layer_and_no_http() -> None:
    root = Path(federated.__file__).parent
    offenders = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
    assert len(list(root.glob("*.py"))) > 15
