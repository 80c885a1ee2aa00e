"""``autospace init``: create a node home and print its DID."""

from __future__ import annotations

from pathlib import Path

import click

from node.cli.common import one_line_errors
from node.home import init_home


@click.command("init")
@click.option("--home", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to create the node home in.")
@click.option("--participant-id", required=True, help="Participant id in the data space (BPN).")
@click.option("--name", required=True, help="Human-readable name of the participant.")
@click.option("--url", "public_url", required=True,
              help="Public base URL of the node; its did:web is derived from it.")
@click.option("--region", default="CN", show_default=True, help="Region / jurisdiction code.")
@click.option("--database-url", default="", help="Database URL (default: SQLite in the home).")
@click.option("--authority-url", default="", help="Trust anchor: the authority's base URL.")
@click.option("--authority-did", default="", help="Trust anchor: the authority's DID.")
@click.option("--authority-key", default="",
              help="Pin the authority's Ed25519 public key (base64url, with --authority-did).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8181).")
@one_line_errors
def init_command(home: Path, participant_id: str, name: str, public_url: str, region: str,
                 database_url: str, authority_url: str, authority_did: str, authority_key: str,
                 port: int | None) -> None:
    """Create a node home: configuration, identity key, database, management API key."""
    result = init_home(
        home, participant_id=participant_id, name=name, public_url=public_url, region=region,
        database_url=database_url, authority_url=authority_url, authority_did=authority_did,
        authority_public_key=authority_key, server_port=port,
    )
    click.echo(f"home:    {home}")
    click.echo(f"config:  {result.config_path}")
    click.echo(f"key id:  {result.key_id}")
    click.echo(f"api key: {result.api_key}   (shown once; only its hash is stored)")
    click.echo(f"did:     {result.did}")
