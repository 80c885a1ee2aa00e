"""The Flask application factory: ``create_app(config)``.

Components are objects (or modules) offering ``init_app(app)``. They read shared
services with ``node.context.node_context(app)`` and contribute blueprints through
``ctx.blueprints.add(bp, surface=...)``; once every component has run, the factory
registers the blueprints with the authentication of their surface and freezes the
registry. Later packages plug in by appending to :data:`COMPONENTS` (or passing
``components=`` to ``create_app``).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import httpx
from flask import Flask, request
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from sqlalchemy.engine import Engine

from connectors.http import apikey, limits, logs
from connectors.http import peer as peer_auth
from connectors.http.problem import ProblemError, register_error_handlers
from node import __version__
from node.apikeys import ApiKeyStore
from node.config import NodeConfig
from node.context import CONTEXT_EXTENSION, Surface, build_context, node_context
from node.db import make_engine, migrate
from node.keystore import KeyStore


class Component(Protocol):
    def init_app(self, app: Flask) -> None: ...


#: Components every node runs, as ``"module"`` or ``"module:attribute"``; order matters only
#: for blueprints sharing a URL prefix. Packages append theirs here.
COMPONENTS: list[str] = [
    "node.metrics",
    "node.web.identity",
    "node.web.health",
    "node.web.peer",
    "node.web.management",
    "connectors.wiring",
    "connectors.dataplane.web",
    "node.ledger_service",
    "node.fl.web",
]

MANAGEMENT_SURFACES = frozenset({Surface.MANAGEMENT, Surface.OPERATIONS})


def load_component(spec: str | Component) -> Component:
    """Import ``"module[:attribute]"`` (or return an object as is)."""
    if not isinstance(spec, str):
        return spec
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module  # type: ignore[return-value]


def create_app(
    config: NodeConfig,
    *,
    keys: KeyStore | None = None,
    engine: Engine | None = None,
    clock: Callable[[], float] = time.time,
    components: Iterable[str | Component] | None = None,
    http: httpx.Client | None = None,
    run_migrations: bool = True,
) -> Flask:
    """Build the node's WSGI app for ``config``.

    Args:
        keys: the key store (default: ``KeyStore(config.home)``).
        engine: database engine (default: from ``config.db_url``).
        clock: Unix seconds, injected into every time-dependent check.
        components: replaces :data:`COMPONENTS` when given.
        http: HTTP client used for DID and registry resolution.
        run_migrations: apply Alembic migrations before serving (idempotent).
    """
    engine = engine or make_engine(config.db_url)
    if run_migrations:
        migrate(engine)
    keys = keys or KeyStore(config.home)
    ctx = build_context(config, keys=keys, engine=engine, clock=clock, http=http)

    app = Flask("autospace")
    app.config.update(
        API_TITLE="autospace management API",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/management",
        OPENAPI_JSON_PATH="openapi.json",
        JSON_SORT_KEYS=False,
    )
    app.extensions[CONTEXT_EXTENSION] = ctx
    app.extensions[apikey.API_KEYS_EXTENSION] = ApiKeyStore(engine)
    if ctx.verifier is not None:
        peer_auth.install_verifier(app, ctx.verifier)

    logs.init_app(app, access_log=config.logging.access_log)
    limits.init_app(app, limits.RequestLimits(config.limits.max_body_bytes,
                                              config.limits.max_json_depth))
    api = Api(app, spec_kwargs={"security": [{"ApiKeyAuth": []}]})
    api.spec.components.security_scheme(
        "ApiKeyAuth", {"type": "apiKey", "in": "header", "name": apikey.API_KEY_HEADER}
    )
    for component in components if components is not None else COMPONENTS:
        load_component(component).init_app(app)
    _register_blueprints(app, api)
    _bind_surfaces(app)
    register_error_handlers(app)  # after Api(), so problem+json wins over smorest's JSON errors
    return app


def _register_blueprints(app: Flask, api: Api) -> None:
    ctx = node_context(app)
    for entry in ctx.blueprints.entries:
        bp = entry.blueprint
        if entry.surface is Surface.PEER:
            peer_auth.protect_blueprint(bp)
        elif entry.surface is Surface.MANAGEMENT:
            apikey.protect_blueprint(bp)
        options: dict[str, Any] = {}
        if entry.url_prefix is not None:
            options["url_prefix"] = entry.url_prefix
        if isinstance(bp, SmorestBlueprint):
            api.register_blueprint(bp, **options)
        else:
            app.register_blueprint(bp, **options)
    ctx.blueprints.freeze()


def _bind_surfaces(app: Flask) -> None:
    """With ``server.management_port`` set, management routes answer only on that port."""
    ctx = node_context(app)
    port = ctx.config.server.management_port
    if not port:
        return
    wanted = str(port)

    @app.before_request
    def _surface_guard() -> None:
        if request.blueprint is None and request.url_rule is None:
            return  # 404 as usual
        surface = ctx.blueprints.surface_of(request.blueprint)
        if request.blueprint == "api-docs":
            surface = Surface.MANAGEMENT
        on_management = request.environ.get("SERVER_PORT") == wanted
        if surface in (Surface.PUBLIC,) and request.blueprint == "health":
            return  # probes answer on both addresses
        if (surface in MANAGEMENT_SURFACES) != on_management:
            raise ProblemError(404, "Not Found", "no such resource on this address")

    # the guard must run before authentication hooks of blueprints: app hooks run first


def app_from_home(home: str) -> Flask:
    """Entry point for WSGI servers: ``node.app:app_from_home('/path/to/home')``."""
    from pathlib import Path

    from connectors.http.logs import configure_logging

    config = NodeConfig.load(Path(home))
    configure_logging(config.logging.level, json_lines=config.logging.json)
    return create_app(config)
