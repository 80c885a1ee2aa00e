"""HTTP face of the data plane (PUBLIC surface: the EDR token is the authentication).

``GET {public_url}/dataplane/public[/subpath]`` with ``Authorization: Bearer <token>`` (or
the bare token, as EDC sends it) streams the asset. The consumer states its purpose with
the query parameter ``purpose`` or the header ``X-Purpose`` (never forwarded to a backend).
``POST {public_url}/dataplane/token`` with ``grant_type=refresh_token&refresh_token=...``
(form or JSON) rotates the tokens. Every refusal is ``application/problem+json`` with the
reasons; nothing else escapes.

Registration (``init_app``): the component builds one :class:`DataPlane` per app and puts
it in ``app.extensions["autospace.dataplane"]`` and its ``DataFlow`` (what
``DspProtocol(data_flow=...)`` needs) in ``app.extensions["autospace.dataflow"]``.
Configuration: section ``[dataplane]`` (``access_ttl``, ``refresh_ttl``, ``ledger`` =
true/false) when the node config knows it; defaults otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from connectors.dataplane.gate import AccessDenied
from connectors.dataplane.sendfile import sendfile_response
from connectors.dataplane.service import DataPlane, build_dataplane
from connectors.dataplane.sources import SourceError, SourceRequest
from connectors.dataplane.tokens import TokenError, bearer
from connectors.http.problem import problem

log = logging.getLogger("autospace.dataplane")
DATAPLANE_EXTENSION = "autospace.dataplane"
DATAFLOW_EXTENSION = "autospace.dataflow"
NODE_EXTENSION = "autospace.node"  # node.context.CONTEXT_EXTENSION (connectors do not import node)
PURPOSE_PARAM = "purpose"
PURPOSE_HEADER = "X-Purpose"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def dataplane_of(app: Flask | None = None) -> DataPlane:
    """The data plane registered on ``app`` (default: the current app)."""
    return (app or current_app).extensions[DATAPLANE_EXTENSION]


def _denied(exc: AccessDenied) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="dataplane"'} if exc.status == 401 else None
    return problem(exc.status, exc.title, "; ".join(exc.reasons), headers=headers,
                   reasons=list(exc.reasons))


def _request_body() -> Any:
    stream = request.stream

    def chunks() -> Any:
        while True:
            block = stream.read(1 << 16)
            if not block:
                return
            yield block

    return chunks


def make_blueprint() -> Blueprint:
    bp = Blueprint("dataplane", __name__, url_prefix="/dataplane")

    @bp.route("/public", methods=METHODS, defaults={"subpath": ""},
              provide_automatic_options=False)
    @bp.route("/public/<path:subpath>", methods=METHODS, provide_automatic_options=False)
    def pull(subpath: str) -> Response:
        plane = dataplane_of()
        purpose = request.args.get(PURPOSE_PARAM) or request.headers.get(PURPOSE_HEADER)
        query = [(k, v) for k, v in request.args.items(multi=True) if k != PURPOSE_PARAM]
        head = request.method == "HEAD"
        req = SourceRequest(
            method="GET" if head else request.method, subpath=subpath, query=query,
            range_header=request.headers.get("Range"),
            body=_request_body() if request.method in ("POST", "PUT", "PATCH") else None,
            content_type=request.headers.get("Content-Type"),
        )
        try:
            metered = plane.pull(bearer(request.headers.get("Authorization")), req,
                                 purpose=purpose, count=not head)
        except AccessDenied as exc:
            return _denied(exc)
        except SourceError as exc:
            return problem(exc.status, exc.title, exc.detail)
        body = metered.body
        headers = dict(body.headers)
        if body.length is not None:
            headers["Content-Length"] = str(body.length)
        headers["Cache-Control"] = "no-store"
        if head:
            metered.chunks.discard()
            return Response(status=body.status, headers=headers, content_type=body.content_type)
        wrapped = sendfile_response(request.environ, plane, metered)
        return Response(metered.chunks if wrapped is None else wrapped, status=body.status,
                        headers=headers, content_type=body.content_type,
                        direct_passthrough=True)

    @bp.post("/token")
    def refresh() -> Response:
        data = request.get_json(silent=True) if request.is_json else request.form
        data = data if isinstance(data, dict) or hasattr(data, "get") else {}
        if data.get("grant_type") != "refresh_token" or not data.get("refresh_token"):
            return problem(400, "Bad Request",
                           "send grant_type=refresh_token and refresh_token",
                           error="invalid_request")
        try:
            pair = dataplane_of().refresh(str(data["refresh_token"]))
        except TokenError as exc:
            return problem(400, "Invalid grant", str(exc), error="invalid_grant")
        response = current_app.json.response(pair.to_json())
        response.headers["Cache-Control"] = "no-store"
        return response

    return bp


def dataplane_settings(ctx: Any) -> dict[str, Any]:
    try:
        values = ctx.config.section("dataplane")
    except Exception:  # a config without the section: defaults
        values = {}
    return values if isinstance(values, dict) else {}


def ledger_origin_of(ctx: Any, settings: dict[str, Any]) -> str | None:
    if settings.get("ledger", True) in (False, "false", 0):
        return None
    try:
        from ledger.settings import default_origin

        origin = ctx.config.section("ledger").get("origin")
        return str(origin or default_origin(ctx.config.public_url))
    except Exception as exc:  # the ledger is optional for the data plane; the table stays
        log.warning("data accesses are not logged to the ledger: %s", exc)
        return None


def init_app(app: Flask) -> None:
    """Component hook: build the data plane, register it and its public routes."""
    ctx = app.extensions[NODE_EXTENSION]
    settings = dataplane_settings(ctx)
    plane = build_dataplane(
        ctx.engine, ctx.keys,
        participant_id=ctx.config.participant_id,
        public_url=ctx.config.public_url,
        clock=ctx.clock,
        ledger_origin=ledger_origin_of(ctx, settings),
        access_ttl=int(settings.get("access_ttl", 300)),
        refresh_ttl=int(settings.get("refresh_ttl", 86400)),
    )
    app.extensions[DATAPLANE_EXTENSION] = plane
    app.extensions[DATAFLOW_EXTENSION] = plane.flow
    ctx.blueprints.add(make_blueprint(), surface="public")
