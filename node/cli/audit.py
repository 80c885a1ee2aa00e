"""``autospace audit``: proof bundles for auditors, their verification, log consistency.

Exit status of ``verify`` and ``consistency``: 0 valid, 1 invalid (the reason is printed),
2 bad input (unreadable file, malformed bundle or key, RPC node down or on another chain).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ledger.errors import FormatError, LedgerError, VerificationError

EXIT_VALID, EXIT_INVALID, EXIT_BAD_INPUT = 0, 1, 2


@click.group("audit")
def audit_group() -> None:
    """Verify records of a transparency log without trusting the node."""


def _emit(as_json: bool, payload: dict[str, Any], line: str) -> None:
    if as_json:
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(line)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"cannot read the {what} file", found=f"{path}: {exc}") from None


def _fail(as_json: bool, exc: LedgerError, report: Any = None) -> None:
    code = EXIT_INVALID if isinstance(exc, VerificationError) else EXIT_BAD_INPUT
    label = "INVALID" if code == EXIT_INVALID else "ERROR"
    payload = (
        report.to_json(valid=False, error=exc)
        if report is not None
        else {"valid": False, "error": {"kind": type(exc).__name__, "reason": exc.diagnosis}}
    )
    if as_json:
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(f"{label}: {exc.diagnosis}", err=True)
    sys.exit(code)


@audit_group.command("verify")
@click.argument("bundle_file", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--rpc", "rpc_url", help="JSON-RPC URL of an EVM node: also check the on-chain anchor."
)
@click.option("--trusted-key", help="The log's verifier key (name+keyid+base64) you trust.")
@click.option("--from", "from_url", help="Log endpoint base URL to fetch a consistency proof from.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
def verify_command(
    bundle_file: Path,
    rpc_url: str | None,
    trusted_key: str | None,
    from_url: str | None,
    as_json: bool,
) -> None:
    """Verify a proof bundle: signature, leaf, inclusion, and (with --rpc) the anchor."""
    from ledger import audit

    report = audit.Report()
    try:
        bundle = audit.load_bundle(_read(bundle_file, "bundle"))
        chain = None
        if rpc_url:
            from ledger.evm import Chain

            chain = Chain.rpc(rpc_url)
        fetch = audit.http_fetcher(from_url) if from_url else None
        audit.verify_bundle(
            bundle, trusted_key=trusted_key, chain=chain, fetch_consistency=fetch, report=report
        )
    except LedgerError as exc:
        _fail(as_json, exc, report)
        return
    anchored = next((c["detail"] for c in report.checks if c["check"] == "anchor"), None)
    line = (
        f"VALID: record {bundle.record_id} ({bundle.record_type}) is leaf {bundle.leaf_index} "
        f"of the {bundle.tree_size}-leaf tree of {bundle.origin}"
    )
    if anchored:
        line += f"; {anchored}"
    for warning in report.warnings:
        line += f"\nwarning: {warning}"
    _emit(as_json, report.to_json(valid=True), line)


@audit_group.command("consistency")
@click.argument(
    "old_file", metavar="OLD_CHECKPOINT", type=click.Path(path_type=Path, dir_okay=False)
)
@click.argument(
    "new_file", metavar="NEW_CHECKPOINT", type=click.Path(path_type=Path, dir_okay=False)
)
@click.option("--trusted-key", required=True, help="The log's verifier key (name+keyid+base64).")
@click.option(
    "--from", "from_url", help="Log endpoint base URL to fetch the consistency proof from."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
def consistency_command(
    old_file: Path, new_file: Path, trusted_key: str, from_url: str | None, as_json: bool
) -> None:
    """Check that the log only grew between two signed checkpoints (detects forks)."""
    from ledger import audit

    try:
        old_note, new_note = _read(old_file, "old checkpoint"), _read(new_file, "new checkpoint")
        fetch = audit.http_fetcher(from_url) if from_url else None
        old, new = audit.check_consistency(old_note, new_note, trusted_key, fetch=fetch)
    except LedgerError as exc:
        _fail(as_json, exc)
        return
    _emit(
        as_json,
        {"consistent": True, "origin": old.origin, "old_size": old.size, "new_size": new.size},
        f"CONSISTENT: {old.origin} grew from {old.size} to {new.size} leaves without rewriting",
    )


@audit_group.command("bundle")
@click.option(
    "--home",
    required=True,
    envvar="AUTOSPACE_HOME",
    type=click.Path(file_okay=False, path_type=Path),
    help="Node home (env AUTOSPACE_HOME).",
)
@click.option(
    "--record", "record_id", required=True, help="Record id (e.g. agreement id, EPCIS eventID)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Where to write the bundle JSON ('-' for stdout).",
)
@click.option(
    "--size", "tree_size", type=int, help="Prove against the signed checkpoint of this size."
)
def bundle_command(home: Path, record_id: str, output: Path, tree_size: int | None) -> None:
    """Write the proof bundle of one record (needs the node home: database and key)."""
    from node.cli.common import one_line_errors

    one_line_errors(_write_bundle)(home, record_id, output, tree_size)


def _write_bundle(home: Path, record_id: str, output: Path, tree_size: int | None) -> None:
    from node.cli.ledger import open_ledger

    try:
        with open_ledger(home) as (engine, log, keys, _settings):
            from ledger.audit import build_bundle
            from ledger.log import durable_transaction

            with durable_transaction(engine) as conn:
                bundle = build_bundle(conn, log, record_id, keys, tree_size=tree_size)
    except LedgerError as exc:
        raise click.ClickException(exc.diagnosis) from None
    text = json.dumps(bundle, indent=1, ensure_ascii=False) + "\n"
    if str(output) == "-":
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    anchor = bundle["anchor"]
    click.echo(
        f"wrote {output}: leaf {bundle['leaf_index']} of {bundle['tree_size']}, "
        + (f"anchored in tx {anchor['tx_hash']}" if anchor else "not yet anchored")
    )
