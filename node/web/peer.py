"""Peer-channel endpoints of the node itself: an authenticated no-op for probes and benchmarks."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify

from connectors.http.peer import current_peer
from node.context import Surface, node_context


def init_app(app: Flask) -> None:
    ctx = node_context(app)
    bp = Blueprint("peer", __name__, url_prefix="/peer")

    @bp.get("/ping")
    def ping() -> Any:
        peer = current_peer()
        return jsonify(pong=True, caller=peer.caller_did, participantId=peer.participant_id,
                       role=peer.role.value)

    ctx.blueprints.add(bp, surface=Surface.PEER)

    public = Blueprint("public_ping", __name__)

    @public.get("/ping")
    def open_ping() -> Any:  # the unauthenticated twin, for the benchmark's baseline
        return jsonify(pong=True)

    ctx.blueprints.add(public, surface=Surface.PUBLIC)
