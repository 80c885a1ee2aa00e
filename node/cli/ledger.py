"""``autospace ledger``: the node's transparency log — status, checkpoints, anchoring."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ledger.errors import LedgerError
from node.cli.common import home_option, one_line_errors


@contextmanager
def open_ledger(home: Path, *, create: bool = False) -> Iterator[tuple[Any, Any, Any, Any]]:
    """(engine, log, key store, ledger settings) of the node at ``home``."""
    from ledger.log import Log
    from ledger.settings import LedgerSettings
    from node.config import NodeConfig
    from node.db import make_engine
    from node.keystore import KeyStore

    config = NodeConfig.load(home)
    settings = LedgerSettings.from_mapping(config.section("ledger"), public_url=config.public_url)
    keys = KeyStore(home)
    engine = make_engine(config.db_url)
    try:
        with engine.begin() as conn:
            log = Log.open(conn, settings.origin, create=create)
        yield engine, log, keys, settings
    finally:
        engine.dispose()


@click.group("ledger")
def ledger_group() -> None:
    """The node's transparency log: status, checkpoints, anchoring."""


def _ledger_errors(func):  # type: ignore[no-untyped-def]
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return func(*args, **kwargs)
        except LedgerError as exc:
            raise click.ClickException(exc.diagnosis) from None

    return wrapper


@ledger_group.command("status")
@home_option
@click.option("--json", "as_json", is_flag=True)
@one_line_errors
@_ledger_errors
def status_command(home: Path, as_json: bool) -> None:
    """Log size, latest checkpoint, verifier key, chain backend and anchors."""
    from ledger.anchor import anchor_status
    from ledger.checkpoint import verifier_key

    with open_ledger(home, create=True) as (engine, log, keys, settings), engine.begin() as conn:
        latest = log.latest_checkpoint(conn)
        out = {
            "origin": log.origin,
            "verifierKey": verifier_key(log.origin, keys.public_key_bytes()),
            "latestCheckpointSize": latest.size if latest else None,
            "backend": settings.backend,
            "ephemeralChain": settings.ephemeral,
            "contract": settings.contract,
            **anchor_status(conn, log),
        }
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(
        f"log {out['origin']}: {out['log_size']} records; latest checkpoint "
        f"{out['latestCheckpointSize']}"
    )
    click.echo(f"verifier key: {out['verifierKey']}")
    chain = settings.backend + (
        " (EPHEMERAL: in-process EVM, anchors vanish on restart)"
        if settings.ephemeral
        else f" {settings.rpc_url}"
    )
    click.echo(f"chain: {chain}; anchors: {out['anchors'] or 'none'}")
    if out["last_error"]:
        click.echo(f"last anchoring error: {out['last_error']}")


@ledger_group.command("checkpoint")
@home_option
@one_line_errors
@_ledger_errors
def checkpoint_command(home: Path) -> None:
    """Sign a checkpoint of the current log and print it (C2SP signed note)."""
    from ledger.log import durable_transaction

    with (
        open_ledger(home, create=True) as (engine, log, keys, _s),
        durable_transaction(engine) as conn,
    ):
        note = log.sign_checkpoint(conn, keys).note
    click.echo(note, nl=False)


@ledger_group.command("deploy")
@home_option
@one_line_errors
@_ledger_errors
def deploy_command(home: Path) -> None:
    """Deploy the anchoring contract on the configured rpc chain (owner: the node's EVM key)."""
    from ledger.evm import Chain, account_from_key

    with open_ledger(home, create=True) as (_engine, _log, keys, settings):
        if settings.backend != "rpc":
            raise click.ClickException(
                "the embedded chain is deployed in-process by the server; "
                'set [ledger] backend = "rpc" to deploy on a real chain'
            )
        chain = Chain.rpc(settings.rpc_url)
        account = account_from_key(keys.evm_private_key("anchor"))
        address = chain.deploy(account)
        click.echo(
            f"LogAnchor deployed at {address} on chain {chain.chain_id()} "
            f'(owner {account.address}); set [ledger] contract = "{address}"'
        )


@ledger_group.command("anchor")
@home_option
@one_line_errors
@_ledger_errors
def anchor_command(home: Path) -> None:
    """Run one anchoring pass now (rpc backend): reconcile, batch, send."""
    from ledger.anchor import Anchorer
    from ledger.evm import Chain

    with open_ledger(home, create=True) as (engine, log, keys, settings):
        if settings.backend != "rpc" or not settings.contract:
            raise click.ClickException(
                'anchoring from the CLI needs [ledger] backend = "rpc" and '
                "a contract (see `autospace ledger deploy`)"
            )
        anchorer = Anchorer(
            engine,
            log,
            Chain.rpc(settings.rpc_url),
            contract=settings.contract,
            account_key=keys.evm_private_key("anchor"),
            signer=keys,
            policy=settings.policy,
            chain_id=settings.chain_id,
        )
        report = anchorer.step()
    if report.error:
        raise click.ClickException(report.error)
    click.echo(
        f"created: {report.created}, sent: {report.sent}, confirmed: {report.confirmed}, "
        f"re-queued: {report.reset}"
    )
