"""``autospace policy``: evaluate and lint ODRL policies offline.

``eval`` exit status: 0 permit, 3 deny, 2 bad input (one clear line on stderr).
``lint`` exit status: 0 no errors (warnings may be printed), 1 errors found, 2 bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

EXIT_PERMIT, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_DENY = 0, 1, 2, 3
PROFILE_CHOICE = click.Choice(["odrl", "catenax", "cn-auto"])
SCOPE_CHOICE = click.Choice(
    ["catalog", "contract.negotiation", "transfer.process", "usage", "monitor"]
)


class BadInput(Exception):
    """An input file is missing, unreadable or not what it should be."""


def _bad(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _load(path: Path | None, what: str) -> Any:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the {what} file {path}: {exc.__class__.__name__}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"the {what} file {path} is not JSON (line {exc.lineno}: {exc.msg})"
        ) from None


@click.group("policy")
def policy_group() -> None:
    """Evaluate and check ODRL usage-control policies (no network, no database)."""


@policy_group.command("eval")
@click.option(
    "--policy",
    "policy_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Policy document (ODRL JSON-LD).",
)
@click.option(
    "--request",
    "request_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Request JSON (see docs/policies.md).",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path),
    help="State JSON (time, memberships, counters, duty states).",
)
@click.option("--profile", default="odrl", show_default=True, type=PROFILE_CHOICE)
@click.option("--scope", default="usage", show_default=True, type=SCOPE_CHOICE)
@click.option("--human", is_flag=True, help="Print a readable tree instead of JSON.")
def eval_command(
    policy_path: Path,
    request_path: Path,
    state_path: Path | None,
    profile: str,
    scope: str,
    human: bool,
) -> None:
    """Decide a request against a policy; exit 0 permit, 3 deny, 2 bad input."""
    from policies import PolicyError, RequestError, evaluate, parse_policy
    from policies.request import parse_request, parse_state

    try:
        policy_doc = _load(policy_path, "policy")
        request_doc = _load(request_path, "request")
        state_doc = _load(state_path, "state")
        policy = parse_policy(policy_doc)
        parse_request(request_doc)
        parse_state(state_doc)
    except BadInput as exc:
        _bad(str(exc))
        return
    except PolicyError as exc:
        _bad(f"invalid policy: {'; '.join(exc.reasons)}")
        return
    except RequestError as exc:
        _bad(f"invalid request or state: {exc}")
        return
    decision = evaluate(policy, request_doc, state_doc, scope=scope, profile=profile)
    if human:
        click.echo(decision.to_text())
    else:
        click.echo(json.dumps(decision.to_json(), indent=2, ensure_ascii=False))
    sys.exit(EXIT_PERMIT if decision.permitted else EXIT_DENY)


@policy_group.command("lint")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--profile", type=PROFILE_CHOICE, help="Also check this profile's rules.")
@click.option(
    "--kind",
    default="usage",
    show_default=True,
    type=click.Choice(["access", "usage"]),
    help="Access (catalog) or usage policy.",
)
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON.")
def lint_command(file: Path, profile: str | None, kind: str, as_json: bool) -> None:
    """Report contradictions between rules and profile violations."""
    from policies import lint_policy

    try:
        doc = _load(file, "policy")
    except BadInput as exc:
        _bad(str(exc))
        return
    findings = lint_policy(doc, profile, kind)
    if as_json:
        click.echo(
            json.dumps({"file": str(file), "findings": findings}, indent=2, ensure_ascii=False)
        )
    elif not findings:
        click.echo(f"{file}: no findings")
    else:
        for f in findings:
            click.echo(f"{file}: {f['severity']}: {f['message']}")
    errors = any(f["severity"] == "error" for f in findings)
    sys.exit(EXIT_FINDINGS if errors else EXIT_PERMIT)
