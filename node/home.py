"""Creating a node home: configuration, identity key, database, management API key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from node.apikeys import create_api_key
from node.config import CONFIG_FILE, NodeConfig
from node.db import make_engine, migrate
from node.keystore import IDENTITY_KEY_FILE, KEYS_DIR, KeyStore

HEADER = """\
# autospace node configuration. Every key can be overridden by an environment variable:
# top-level keys by AUTOSPACE_<KEY>, section keys by AUTOSPACE_<SECTION>_<KEY>
# (e.g. AUTOSPACE_DATABASE_URL, AUTOSPACE_SERVER_PORT). Reference: docs/node.md.
# database_url = "" means sqlite:///<home>/autospace.sqlite.

"""


class HomeError(Exception):
    """The home cannot be created as asked (one line for the CLI)."""


@dataclass(frozen=True)
class InitResult:
    did: str
    key_id: str
    api_key: str
    api_key_id: str
    config_path: Path


def init_home(
    home: Path,
    *,
    participant_id: str,
    name: str,
    public_url: str,
    region: str = "CN",
    database_url: str = "",
    authority_url: str = "",
    authority_did: str = "",
    authority_public_key: str = "",
    server_port: int | None = None,
) -> InitResult:
    """Create a node home; refuse if one exists. Returns the DID and the API key (shown once)."""
    home = Path(home)
    if (home / CONFIG_FILE).exists():
        raise HomeError(f"{home / CONFIG_FILE} already exists; this home is initialised")
    home.mkdir(parents=True, exist_ok=True)
    data: dict = {
        "participant_id": participant_id,
        "name": name,
        "public_url": public_url.rstrip("/"),
        "region": region,
        "database_url": database_url,
        "trust": {
            k: v for k, v in (("authority_url", authority_url), ("authority_did", authority_did),
                              ("authority_public_key", authority_public_key)) if v
        },
    }
    if server_port is not None:
        data["server"] = {"port": server_port}
    config = NodeConfig.from_dict(home, data, env={})  # validates before anything is written
    toml_data = config.to_toml_dict()
    effective = NodeConfig.from_dict(home, toml_data, env=os.environ)
    keys = KeyStore.create(home)
    try:
        engine = make_engine(effective.db_url)
        try:
            migrate(engine)
            key_id, api_key = create_api_key(engine, "initial")
        finally:
            engine.dispose()
    except BaseException:
        # leave no half-made home behind: the operator can simply run init again
        (home / KEYS_DIR / IDENTITY_KEY_FILE).unlink(missing_ok=True)
        raise
    (home / CONFIG_FILE).write_text(HEADER + tomli_w.dumps(toml_data))
    return InitResult(config.did, keys.key_id, api_key, key_id, home / CONFIG_FILE)
