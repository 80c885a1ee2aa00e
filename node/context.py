"""What the app's components share: configuration, keys, engine, trust, peer client.

Built once by :func:`build_context` and stored on the app; components reach it with
:func:`node_context`. Blueprints are added through :class:`BlueprintRegistry`, which
applies the right authentication per surface and is frozen when set-up ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from flask import Blueprint, Flask, current_app
from sqlalchemy.engine import Engine

from connectors.identity.peer_client import PeerClient
from connectors.identity.replay_local import LocalReplayStore
from connectors.identity.resolver import HttpDidResolver
from connectors.identity.store import SqlRegistryStore, SqlReplayStore
from connectors.identity.trust import (
    AnchorKeys,
    HttpRegistrySource,
    PeerVerifier,
    RegistryCache,
    TrustAnchor,
)
from node.config import NodeConfig
from node.credential import CredentialFile
from node.keystore import KeyStore

CONTEXT_EXTENSION = "autospace.node"


class Surface(StrEnum):
    """Who may call a blueprint's routes."""

    PUBLIC = "public"  # anyone (DID document, health)
    PEER = "peer"  # verified data-space members (peer token)
    MANAGEMENT = "management"  # the operator (X-Api-Key); may sit on its own address
    OPERATIONS = "operations"  # scrapers (no key); on the management address when separate


@dataclass(frozen=True)
class BlueprintEntry:
    blueprint: Blueprint
    surface: Surface
    url_prefix: str | None


class BlueprintRegistry:
    """Blueprints contributed by components, registered by ``create_app`` after set-up."""

    def __init__(self) -> None:
        self._entries: list[BlueprintEntry] = []
        self._frozen = False

    def add(self, blueprint: Blueprint, *, surface: Surface | str,
            url_prefix: str | None = None) -> None:
        """Contribute ``blueprint``; peer and management surfaces get authentication applied.

        A flask-smorest ``Blueprint`` on the management surface also appears in
        ``/management/openapi.json``.
        """
        if self._frozen:
            raise RuntimeError("blueprints can only be added while the app is being created")
        self._entries.append(BlueprintEntry(blueprint, Surface(surface), url_prefix))

    def freeze(self) -> None:
        self._frozen = True

    @property
    def entries(self) -> tuple[BlueprintEntry, ...]:
        return tuple(self._entries)

    def surface_of(self, blueprint_name: str | None) -> Surface | None:
        for e in self._entries:
            if e.blueprint.name == blueprint_name:
                return e.surface
        return None


@dataclass
class NodeContext:
    """Shared services of one node app (one per process)."""

    config: NodeConfig
    keys: KeyStore
    engine: Engine
    clock: Callable[[], float]
    credential: CredentialFile
    resolver: HttpDidResolver
    peer_client: PeerClient
    anchor_keys: AnchorKeys | None
    registries: RegistryCache | None
    verifier: PeerVerifier | None
    replay: SqlReplayStore | LocalReplayStore
    registry_store: SqlRegistryStore
    http: httpx.Client
    blueprints: BlueprintRegistry = field(default_factory=BlueprintRegistry)
    did_services: list[dict[str, Any]] = field(default_factory=list)

    @property
    def did(self) -> str:
        return self.config.did

    def close(self) -> None:
        self.peer_client.close()
        self.http.close()
        self.replay.close()
        self.engine.dispose()


def trust_anchors(config: NodeConfig) -> list[TrustAnchor]:
    did = config.authority_did
    if not did:
        return []
    return [TrustAnchor(did=did, public_key=config.authority_key,
                        registry_url=config.trust.registry_url or None)]


def replay_store(config: NodeConfig, engine: Engine,
                 clock: Callable[[], float]) -> SqlReplayStore | LocalReplayStore:
    """The jti store ``trust.replay_store`` names; "auto" keeps a SQLite node's ids locally.

    A SQLite file serves one host, so its processes share an LMDB directory beside it
    (``<file>-replay``); with PostgreSQL, servers may run on several hosts, so "auto" keeps
    the ids in the database and "local" (one host only) uses ``<home>/replay``.
    """
    kind = config.trust.replay_store
    sqlite_file = (engine.dialect.name == "sqlite"
                   and engine.url.database not in (None, "", ":memory:"))
    if kind == "database" or (kind == "auto" and not sqlite_file):
        return SqlReplayStore(engine, clock=clock)
    path = Path(f"{engine.url.database}-replay") if sqlite_file else config.home / "replay"
    return LocalReplayStore(path, clock=clock)


def build_context(
    config: NodeConfig,
    *,
    keys: KeyStore,
    engine: Engine,
    clock: Callable[[], float] = time.time,
    http: httpx.Client | None = None,
) -> NodeContext:
    """Wire the identity layer for ``config``: resolver, registries, verifier, peer client."""
    t = config.trust
    http = http or httpx.Client(timeout=httpx.Timeout(config.peer.timeout_seconds),
                                follow_redirects=False)
    allow_http = tuple(t.allow_http_hosts)
    resolver = HttpDidResolver(http, ttl=t.did_cache_seconds, clock=clock,
                               allow_http_hosts=allow_http)
    replay = replay_store(config, engine, clock)
    registry_store = SqlRegistryStore(engine)
    anchors = trust_anchors(config)
    anchor_keys = registries = verifier = None
    if anchors:
        anchor_keys = AnchorKeys(anchors, resolver)
        registries = RegistryCache(
            anchor_keys,
            HttpRegistrySource(http, resolver, allow_http_hosts=allow_http),
            clock=clock,
            refresh_interval=t.registry_refresh_seconds,
            store=registry_store,
        )
        verifier = PeerVerifier(
            own_did=config.did, keys=anchor_keys, registries=registries, resolver=resolver,
            replay=replay, clock=clock, skew=t.clock_skew_seconds,
            max_lifetime=t.max_token_lifetime_seconds,
        )
    credential = CredentialFile(config.home)
    peer_client = PeerClient(
        keys, config.did, credential, clock=clock, timeout=config.peer.timeout_seconds,
        retries=config.peer.retries, backoff=config.peer.backoff_seconds,
        token_lifetime=config.peer.token_lifetime_seconds,
    )
    return NodeContext(
        config=config, keys=keys, engine=engine, clock=clock, credential=credential,
        resolver=resolver, peer_client=peer_client, anchor_keys=anchor_keys,
        registries=registries, verifier=verifier, replay=replay,
        registry_store=registry_store, http=http,
    )


def node_context(app: Flask | None = None) -> NodeContext:
    """The context of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    return target.extensions[CONTEXT_EXTENSION]
