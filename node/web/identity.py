"""Public identity documents: the node's DID document and JWKS."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, json

from connectors.identity.did import did_document
from node.context import Surface, node_context


def init_app(app: Flask) -> None:
    ctx = node_context(app)
    bp = Blueprint("identity", __name__)

    def _did() -> Response:
        doc = did_document(ctx.did, ctx.keys.public_key_bytes(), ctx.keys.key_id,
                           services=ctx.did_services or None)
        return Response(json.dumps(doc), mimetype="application/did+json")

    bp.add_url_rule("/.well-known/did.json", "did", _did)
    if urlsplit(ctx.config.public_url).path.strip("/"):
        # did:web with a path resolves to <path>/did.json; a proxy strips the path prefix.
        bp.add_url_rule("/did.json", "did_path", _did)

    @bp.get("/.well-known/jwks.json")
    def jwks() -> Response:
        return Response(json.dumps({"keys": [ctx.keys.public_jwk()]}),
                        mimetype="application/jwk-set+json")

    ctx.blueprints.add(bp, surface=Surface.PUBLIC)
