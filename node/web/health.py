"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from node.context import Surface, node_context


def init_app(app: Flask) -> None:
    ctx = node_context(app)
    bp = Blueprint("health", __name__)

    @bp.get("/health/live")
    def live() -> Any:
        return jsonify(status="UP")

    @bp.get("/health/ready")
    def ready() -> Any:
        checks: dict[str, Any] = {}
        try:
            with ctx.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "UP"
        except SQLAlchemyError as exc:
            checks["database"] = f"DOWN: {type(exc).__name__}"
        checks["keys"] = "UP" if ctx.keys.public_key_bytes() else "DOWN"
        checks["credential"] = "present" if ctx.credential() else "missing"
        checks["trustAnchor"] = ctx.config.authority_did or "none"
        up = checks["database"] == "UP" and checks["keys"] == "UP"
        response = jsonify(status="UP" if up else "DOWN", checks=checks)
        if not up:
            response.status_code = 503
            response.headers["Retry-After"] = "5"
        return response

    ctx.blueprints.add(bp, surface=Surface.PUBLIC)
