"""Rebuild LogAnchor.json (ABI + bytecode) from LogAnchor.sol with solc-js from npm.

Usage: ``python -m ledger.contracts.build [--check]`` from the repository root, after
``make tools`` (installs solc into ``.tools/node_modules``). ``--check`` compares with the
shipped artifact instead of writing it. Nothing here runs in the node: the artifact is
package data, so no compiler is needed at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "LogAnchor.sol"
ARTIFACT = HERE / "LogAnchor.json"
REPO = HERE.parent.parent
SOLCJS = REPO / ".tools" / "node_modules" / "solc" / "solc.js"
CONTRACT = "LogAnchor"
# Fixed settings: paris (no PUSH0) runs on every EVM we target, including Besu QBFT
# networks and eth-tester; no metadata hash so the bytecode depends on the source only.
SETTINGS = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "paris",
    "metadata": {"bytecodeHash": "none", "appendCBOR": False},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


class BuildError(RuntimeError):
    """The compiler is missing or reported errors."""


def compile_contract() -> dict:
    """Compile with solc-js and return the artifact dict."""
    node = shutil.which("node")
    if node is None or not SOLCJS.exists():
        raise BuildError(f"needs node and solc-js at {SOLCJS} (run `make tools`)")
    source = SOURCE.read_text()
    request = {
        "language": "Solidity",
        "sources": {"LogAnchor.sol": {"content": source}},
        "settings": SETTINGS,
    }
    proc = subprocess.run(
        [node, str(SOLCJS), "--standard-json"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # solc-js may print a notice line before the JSON output.
    text = proc.stdout[proc.stdout.find("{") :]
    try:
        out = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BuildError(f"solc-js failed: {proc.stderr.strip() or proc.stdout[:500]}") from exc
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("; ".join(e.get("formattedMessage", e.get("message", "")) for e in errors))
    version = subprocess.run(
        [node, str(SOLCJS), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    c = out["contracts"]["LogAnchor.sol"][CONTRACT]
    return {
        "contractName": CONTRACT,
        "compiler": f"solc-js {version}",
        "settings": {k: v for k, v in SETTINGS.items() if k != "outputSelection"},
        "sourceSha256": hashlib.sha256(source.encode()).hexdigest(),
        "abi": c["abi"],
        "bytecode": "0x" + c["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + c["evm"]["deployedBytecode"]["object"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped artifact")
    args = parser.parse_args(argv)
    try:
        built = compile_contract()
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        shipped = json.loads(ARTIFACT.read_text())
        same = shipped["bytecode"] == built["bytecode"] and shipped["abi"] == built["abi"]
        print("shipped artifact matches the source" if same else "shipped artifact is STALE")
        return 0 if same else 1
    ARTIFACT.write_text(json.dumps(built, indent=2) + "\n")
    print(f"wrote {ARTIFACT} ({len(built['bytecode']) // 2 - 1} bytes of init code)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
