"""``autospace authority``: run a dataspace authority."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import click

from connectors.identity.credentials import Role
from node.authority_home import create_authority_app, init_authority, load_authority
from node.cli.common import home_option, one_line_errors


@click.group("authority")
def authority_group() -> None:
    """Admit participants, publish the member registry, revoke members."""


@authority_group.command("init")
@click.option("--home", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Name of the data space authority.")
@click.option("--url", default="", help="Public base URL (gives a did:web; else did:key).")
@one_line_errors
def init_command(home: Path, name: str, url: str) -> None:
    """Create an authority home with its signing key."""
    settings, public_key = init_authority(home, name=name, url=url)
    click.echo(f"did:        {settings.did}")
    click.echo(f"public key: {public_key}   (pin with trust.authority_public_key)")
    if settings.registry_url:
        click.echo(f"registry:   {settings.registry_url}")


@authority_group.command("admit")
@home_option
@click.option("--did", "member_did", required=True, help="DID of the participant's node.")
@click.option("--participant-id", required=True)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--region", default="CN", show_default=True)
@click.option("--valid-days", type=float, default=365, show_default=True)
@click.option("--name", default=None, help="Participant name (default: the participant id).")
@click.option("--url", default=None, help="Node URL for the registry (default: from did:web).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write the membership credential (JWT) to.")
@one_line_errors
def admit_command(home: Path, member_did: str, participant_id: str, role: str, region: str,
                  valid_days: float, name: str | None, url: str | None, out: Path) -> None:
    """Issue a membership credential and list the participant in the registry."""
    authority, _, _ = load_authority(home)
    token, member = authority.admit(member_did=member_did, participant_id=participant_id,
                                    role=role, region=region, valid_days=valid_days, name=name,
                                    url=url)
    out.write_text(token + "\n")
    click.echo(f"admitted {member.participant_id} ({member.did}) as {member.role}; "
               f"credential {member.credential_id} written to {out}")


@authority_group.command("revoke")
@home_option
@click.option("--did", "member_did", required=True, help="DID of the member to remove.")
@one_line_errors
def revoke_command(home: Path, member_did: str) -> None:
    """Remove a member; nodes refuse it once they refresh the registry."""
    authority, _, _ = load_authority(home)
    revocation = authority.revoke(member_did)
    click.echo(f"revoked {revocation.did} (credential {revocation.credential_id})")


@authority_group.command("members")
@home_option
@one_line_errors
def members_command(home: Path) -> None:
    """List admitted members."""
    authority, _, _ = load_authority(home)
    for m in authority.members():
        click.echo(f"{m.participant_id}\t{m.role}\t{m.region}\t{m.did}\t{m.url}")


@authority_group.command("serve")
@home_option
@click.option("--host", default=None, help="Listen address (default: from the URL, or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: from the URL, or 8180).")
@click.option("--dev", is_flag=True, help="Use Flask's development server instead of gunicorn.")
@one_line_errors
def serve_command(home: Path, host: str | None, port: int | None, dev: bool) -> None:
    """Publish the DID document and the signed member registry."""
    from connectors.http.logs import configure_logging
    from node.server import run_dev, run_gunicorn

    _, settings, _ = load_authority(home)
    parsed = urlsplit(settings.url) if settings.url else None
    host = host or "127.0.0.1"
    port = port or (parsed.port if parsed and parsed.port else 8180)
    configure_logging("info")
    if dev:
        run_dev([(host, port, create_authority_app(home))])
        return
    run_gunicorn(lambda: create_authority_app(home), {
        "bind": [f"{host}:{port}"], "workers": 1, "worker_class": "gthread", "threads": 4,
        "accesslog": None, "errorlog": "-", "control_socket_disable": True,
    })
