"""The node's own management API: identity and known peers (``/management/v3``)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from connectors.identity import credentials, registry
from connectors.identity.errors import PeerAuthError
from node.context import Surface, node_context


class CredentialSchema(Schema):
    id = fields.String()
    issuer = fields.String()
    role = fields.String()
    region = fields.String()
    validFrom = fields.Integer(attribute="valid_from")
    validUntil = fields.Integer(attribute="valid_until")
    expired = fields.Boolean()


class NodeInfoSchema(Schema):
    did = fields.String(required=True)
    participantId = fields.String(required=True, attribute="participant_id")
    name = fields.String(required=True)
    region = fields.String()
    publicUrl = fields.String(attribute="public_url")
    keyId = fields.String(attribute="key_id")
    trustAnchor = fields.String(allow_none=True, attribute="trust_anchor")
    credential = fields.Nested(CredentialSchema, allow_none=True)


class PeerSchema(Schema):
    did = fields.String(required=True)
    participantId = fields.String(attribute="participant_id")
    name = fields.String()
    role = fields.String()
    region = fields.String()
    url = fields.String()
    validUntil = fields.Integer(attribute="valid_until")


def known_peers(ctx: Any) -> list[registry.Member]:
    """Members listed by the stored registry documents (excluding this node)."""
    peers: list[registry.Member] = []
    for authority, (document, _) in ctx.registry_store.all().items():
        if ctx.anchor_keys is None or authority not in ctx.anchor_keys.anchors:
            continue
        try:
            reg = registry.verify(document, issuer=authority,
                                  key=ctx.anchor_keys.key(authority, None), now=0)
        except PeerAuthError:
            continue
        peers.extend(m for m in reg.members.values() if m.did != ctx.did)
    return sorted(peers, key=lambda m: m.participant_id)


def init_app(app: Flask) -> None:
    ctx = node_context(app)
    bp = Blueprint("node_management", __name__, url_prefix="/management/v3",
                   description="This node's identity and the peers it knows")

    @bp.route("/node")
    class NodeInfo(MethodView):
        @bp.response(200, NodeInfoSchema)
        def get(self) -> dict[str, Any]:
            """This node's identity, credential and trust anchor."""
            cred = None
            token = ctx.credential()
            if token:
                try:
                    _, c = credentials.read(token)
                    cred = {"id": c.id, "issuer": c.issuer, "role": c.role.value,
                            "region": c.region, "valid_from": c.valid_from,
                            "valid_until": c.valid_until,
                            "expired": ctx.clock() >= c.valid_until}
                except PeerAuthError:
                    cred = None
            cfg = ctx.config
            return {"did": ctx.did, "participant_id": cfg.participant_id, "name": cfg.name,
                    "region": cfg.region, "public_url": cfg.public_url,
                    "key_id": ctx.keys.key_id, "trust_anchor": cfg.authority_did or None,
                    "credential": cred}

    @bp.route("/peers")
    class Peers(MethodView):
        @bp.response(200, PeerSchema(many=True))
        def get(self) -> list[registry.Member]:
            """Members of the data space known from the authority's registry."""
            return known_peers(ctx)

    ctx.blueprints.add(bp, surface=Surface.MANAGEMENT)
