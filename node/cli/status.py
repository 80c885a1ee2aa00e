"""``autospace status``: identity, credential, database, trust anchor, peers known."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from node.cli.common import home_option, one_line_errors
from node.config import NodeConfig


def collect_status(home: Path, *, now: float | None = None) -> dict[str, Any]:
    """Everything ``status`` shows, as a JSON-ready dict (no network access)."""
    from connectors.identity import credentials, jws, registry
    from connectors.identity.errors import PeerAuthError
    from connectors.identity.store import SqlRegistryStore
    from node.apikeys import ApiKeyStore
    from node.credential import CredentialFile
    from node.db import make_engine
    from node.keystore import KeyStore

    now = time.time() if now is None else now
    config = NodeConfig.load(home)
    keys = KeyStore(home)
    out: dict[str, Any] = {
        "did": config.did,
        "participantId": config.participant_id,
        "name": config.name,
        "region": config.region,
        "publicUrl": config.public_url,
        "keyId": keys.key_id,
        "trustAnchor": config.authority_did or None,
    }
    token = CredentialFile(home)()
    if token is None:
        out["credential"] = None
    else:
        try:
            _, cred = credentials.read(token)
            out["credential"] = {
                "id": cred.id, "issuer": cred.issuer, "role": cred.role.value,
                "validFrom": cred.valid_from, "validUntil": cred.valid_until,
                "valid": cred.valid_from <= now < cred.valid_until,
                "daysLeft": round((cred.valid_until - now) / 86400, 1),
            }
        except PeerAuthError as exc:
            out["credential"] = {"error": exc.detail}
    engine = make_engine(config.db_url)
    database: dict[str, Any] = {"url": engine.url.render_as_string(hide_password=True),
                                "backend": engine.url.get_backend_name()}
    peers: list[dict[str, Any]] = []
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database["reachable"] = True
        database["apiKeys"] = ApiKeyStore(engine).count()
        for authority, (document, fetched_at) in SqlRegistryStore(engine).all().items():
            try:
                payload = jws.parse(document).payload
                members = [registry.Member(**m) for m in payload.get("members", [])]
            except (ValueError, TypeError):
                continue
            for m in members:
                if m.did != config.did:
                    peers.append({"participantId": m.participant_id, "did": m.did,
                                  "role": m.role, "url": m.url, "authority": authority,
                                  "registryFetchedAt": fetched_at})
        from node.ledger_service import ledger_status

        out["ledger"] = ledger_status(config, engine)
    except SQLAlchemyError as exc:
        database["reachable"] = False
        database["error"] = str(exc).splitlines()[0]
    finally:
        engine.dispose()
    out["database"] = database
    out["peers"] = peers
    return out


@click.command("status")
@home_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@one_line_errors
def status_command(home: Path, as_json: bool) -> None:
    """Show this node's identity, credential validity, database and known peers."""
    status = collect_status(home)
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    ident = Table(show_header=False, box=None)
    for label, key in (("DID", "did"), ("participant", "participantId"), ("name", "name"),
                       ("region", "region"), ("key id", "keyId"), ("trust anchor", "trustAnchor")):
        ident.add_row(f"[bold]{label}[/]", str(status[key] or "—"))
    cred = status["credential"]
    if cred is None:
        ident.add_row("[bold]credential[/]", "[red]none — run `autospace credential import`[/]")
    elif "error" in cred:
        ident.add_row("[bold]credential[/]", f"[red]{cred['error']}[/]")
    else:
        colour = "green" if cred["valid"] else "red"
        ident.add_row("[bold]credential[/]", f"[{colour}]{cred['role']}, "
                      f"{'valid' if cred['valid'] else 'NOT valid'}, {cred['daysLeft']} days "
                      f"left[/] ({cred['issuer']})")
    db = status["database"]
    ident.add_row("[bold]database[/]", f"{db['url']} — " + (
        "[green]reachable[/]" if db.get("reachable") else f"[red]{db.get('error')}[/]"))
    if status.get("ledger"):
        from node.ledger_service import ledger_line

        ident.add_row("[bold]ledger[/]", ledger_line(status["ledger"]))
    console.print(ident)
    peers = Table(title=f"peers known ({len(status['peers'])})")
    for col in ("participant", "role", "DID", "URL"):
        peers.add_column(col)
    for p in status["peers"]:
        peers.add_row(p["participantId"], p["role"], p["did"], p["url"])
    console.print(peers)
