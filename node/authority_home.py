"""A dataspace authority's home and its small HTTP app (DID document + member registry)."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import tomli_w
from flask import Blueprint, Flask, Response, json, jsonify

from connectors.http import limits, logs
from connectors.http.problem import register_error_handlers
from connectors.identity.authority import DEFAULT_REGISTRY_VALIDITY, Authority, MemberBook
from connectors.identity.did import did_key_from_public_key, did_web_from_url
from connectors.identity.errors import IdentityError
from connectors.identity.jwk import b64url_encode
from node.keystore import KeyStore

AUTHORITY_FILE = "authority.toml"
MEMBERS_FILE = "members.json"


@dataclass(frozen=True)
class AuthoritySettings:
    name: str
    did: str
    url: str  # '' for a did:key authority without a public URL
    registry_validity_seconds: int = DEFAULT_REGISTRY_VALIDITY

    @property
    def registry_url(self) -> str | None:
        return f"{self.url}/registry" if self.url else None


def init_authority(home: Path, *, name: str, url: str = "") -> tuple[AuthoritySettings, str]:
    """Create an authority home; return its settings and public key (base64url) for pinning."""
    home = Path(home)
    if (home / AUTHORITY_FILE).exists():
        raise IdentityError(f"{home / AUTHORITY_FILE} already exists")
    url = url.rstrip("/")
    did = did_web_from_url(url) if url else ""
    home.mkdir(parents=True, exist_ok=True)
    keys = KeyStore.create(home)
    if not did:
        did = did_key_from_public_key(keys.public_key_bytes())
    settings = AuthoritySettings(name=name, did=did, url=url)
    (home / AUTHORITY_FILE).write_text(tomli_w.dumps({
        "name": name, "did": did, "url": url,
        "registry_validity_seconds": settings.registry_validity_seconds,
    }))
    MemberBook(home / MEMBERS_FILE).save({}, [])
    return settings, b64url_encode(keys.public_key_bytes())


def load_authority(
    home: Path, *, clock: Callable[[], float] = time.time
) -> tuple[Authority, AuthoritySettings, KeyStore]:
    home = Path(home)
    path = home / AUTHORITY_FILE
    if not path.exists():
        raise IdentityError(f"{path} does not exist; run `autospace authority init` first")
    try:
        data = tomllib.loads(path.read_text())
        settings = AuthoritySettings(
            name=str(data["name"]), did=str(data["did"]), url=str(data.get("url", "")),
            registry_validity_seconds=int(data.get("registry_validity_seconds",
                                                   DEFAULT_REGISTRY_VALIDITY)),
        )
    except (tomllib.TOMLDecodeError, KeyError, ValueError) as exc:
        raise IdentityError(f"{path} is invalid: {exc}") from None
    keys = KeyStore(home)
    return Authority(settings.did, keys, MemberBook(home / MEMBERS_FILE), clock=clock), \
        settings, keys


def create_authority_app(home: Path, *, clock: Callable[[], float] = time.time) -> Flask:
    """Serve the authority's DID document and its signed member registry."""
    authority, settings, _ = load_authority(home, clock=clock)
    app = Flask("autospace-authority")
    logs.init_app(app)
    limits.init_app(app, limits.RequestLimits())
    bp = Blueprint("authority", __name__)

    def did_json() -> Response:
        return Response(json.dumps(authority.did_document(settings.registry_url)),
                        mimetype="application/did+json")

    bp.add_url_rule("/.well-known/did.json", "did", did_json)
    if settings.url and urlsplit(settings.url).path.strip("/"):
        bp.add_url_rule("/did.json", "did_path", did_json)

    @bp.get("/registry")
    def registry_document() -> Response:
        token = authority.registry_document(validity=settings.registry_validity_seconds)
        return Response(token, mimetype="application/jwt",
                        headers={"Cache-Control": "no-store"})

    @bp.get("/health/live")
    def live() -> Response:
        return jsonify(status="UP", did=settings.did)

    app.register_blueprint(bp)
    register_error_handlers(app)
    return app
