"""``autospace credential import``: store the node's membership credential."""

from __future__ import annotations

import time
from pathlib import Path

import click
import httpx

from connectors.identity.resolver import HttpDidResolver
from connectors.identity.trust import AnchorKeys
from node.cli.common import home_option, one_line_errors
from node.config import NodeConfig
from node.context import trust_anchors
from node.credential import import_credential


@click.group("credential")
def credential_group() -> None:
    """The node's membership credential."""


@credential_group.command("import")
@home_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@one_line_errors
def import_command(home: Path, file: Path) -> None:
    """Check FILE (a membership credential JWT) and store it as this node's credential.

    The signature is checked against the configured trust anchor (its DID document is
    fetched when the key is not pinned).
    """
    config = NodeConfig.load(home)
    anchors = trust_anchors(config)
    with httpx.Client(timeout=config.peer.timeout_seconds) as http:
        keys = None
        if anchors:
            resolver = HttpDidResolver(http, clock=time.time,
                                       allow_http_hosts=tuple(config.trust.allow_http_hosts))
            keys = AnchorKeys(anchors, resolver)
        else:
            click.echo("warning: no trust anchor configured; the signature is not checked",
                       err=True)
        cred = import_credential(home, file.read_text(), node_did=config.did, keys=keys,
                                 now=time.time(), skew=config.trust.clock_skew_seconds)
    until = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(cred.valid_until))
    click.echo(f"imported credential {cred.id}: {cred.participant_id} as {cred.role.value} "
               f"({cred.region}), issued by {cred.issuer}, valid until {until}")
