"""The DSP 2025-1 HTTPS binding: Flask routes that translate HTTP to :class:`DspProtocol`.

Every route is on the PEER surface (the node's peer-token authentication runs first and
gives the verified caller); the protocol object does all the work. Whatever goes wrong —
malformed JSON, a refused token, an unknown route under the protocol path, an unexpected
exception — the peer gets the DSP error message of the protocol it called
(``CatalogError``, ``ContractNegotiationError``, ``TransferError``), never problem+json
and never a traceback. ``GET /.well-known/dspace-version`` is public.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, json, request
from werkzeug.exceptions import HTTPException

from connectors.delivery import MessageLog
from connectors.dsp import messages as m
from connectors.dsp.catalog import TOKEN_PARAM
from connectors.dsp.errors import DspError, InvalidMessageError, ProcessNotFoundError
from connectors.dsp.outcome import ProcessKind
from connectors.dsp.service import DspProtocol, Reply
from connectors.dsp.vocabulary import WELL_KNOWN_VERSION_PATH, ErrorCode, Path
from connectors.http.peer import current_peer
from connectors.http.problem import ProblemError
from connectors.policy_checker import caller_of

log = logging.getLogger("autospace.connector")
JSON = "application/json"


def _kind_of(path: str) -> ProcessKind | None:
    """Which protocol a request path belongs to (for the error body type)."""
    if "/negotiations" in path:
        return ProcessKind.NEGOTIATION
    if "/transfers" in path:
        return ProcessKind.TRANSFER
    return None


def error_body(err: DspError, kind: ProcessKind | None) -> dict[str, Any]:
    """The DSP error message for ``err`` in the protocol ``kind`` (None = catalog)."""
    if kind is ProcessKind.NEGOTIATION:
        return m.negotiation_error(err).to_json()
    if kind is ProcessKind.TRANSFER:
        return m.transfer_error(err).to_json()
    return m.catalog_error(err).to_json()


def reply_response(reply: Reply) -> Response:
    """A protocol reply as an HTTP response (``Link`` headers for catalog pages)."""
    if reply.body is None:
        response = Response(status=reply.status)
    else:
        response = Response(json.dumps(reply.body), status=reply.status, mimetype=JSON)
    for link in reply.links:
        response.headers.add("Link", link)
    return response


def _json_body(kind: ProcessKind | None) -> Any:
    """The request's JSON body, or a DSP 400 for anything that is not JSON."""
    data = request.get_data(cache=True)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise _Refused(
            InvalidMessageError(f"the body is not valid JSON: {exc}"), kind
        ) from None


class _Refused(Exception):
    """Internal: answer ``err`` as the DSP error of ``kind``."""

    def __init__(self, err: DspError, kind: ProcessKind | None) -> None:
        super().__init__(str(err))
        self.err = err
        self.kind = kind


def protocol_blueprint(
    protocol: DspProtocol,
    *,
    base_path: str,
    messages: MessageLog,
    after_commit: Callable[[], None],
) -> Blueprint:
    """All DSP endpoints (provider and consumer callbacks) under ``base_path``.

    Args:
        protocol: the node's protocol object.
        base_path: e.g. ``/protocol`` (the protocol URL is public URL + base path).
        messages: optional log of every message received and answered.
        after_commit: called after a message was applied (wakes the outbox dispatcher).
    """
    bp = Blueprint("dsp", __name__, url_prefix=base_path)

    def receive(endpoint: str, pid: str | None = None) -> Response:
        kind = ProcessKind.TRANSFER if endpoint.startswith("/transfers") else (
            ProcessKind.NEGOTIATION
        )
        body = _json_body(kind)
        messages.write("received", request.path, body)
        reply = protocol.receive(caller_of(current_peer()), endpoint, body, pid)
        messages.write("answered", request.path, reply.body, reply.status)
        if reply.status < 300:
            after_commit()
        return reply_response(reply)

    def post_route(template: str) -> None:
        rule = template.replace("{pid}", "<path:pid>") if "{pid}" in template else template

        def view(pid: str | None = None) -> Response:
            return receive(template, pid)

        view.__name__ = "post_" + template.strip("/").replace("/", "_").replace(
            "{pid}", "pid"
        ).replace("-", "_")
        bp.add_url_rule(rule, view_func=view, methods=["POST"])

    # initial messages first (static segments win over <path:pid> anyway, but be explicit)
    for template in (
        Path.NEGOTIATIONS_REQUEST,
        Path.NEGOTIATIONS_OFFERS,
        Path.TRANSFERS_REQUEST,
        Path.NEGOTIATION_REQUEST,
        Path.NEGOTIATION_EVENTS,
        Path.NEGOTIATION_VERIFICATION,
        Path.NEGOTIATION_TERMINATION,
        Path.NEGOTIATION_OFFERS,
        Path.NEGOTIATION_AGREEMENT,
        Path.TRANSFER_START,
        Path.TRANSFER_COMPLETION,
        Path.TRANSFER_SUSPENSION,
        Path.TRANSFER_TERMINATION,
    ):
        post_route(template)

    @bp.get("/negotiations/<path:pid>")
    def get_negotiation(pid: str) -> Response:
        reply = protocol.describe(caller_of(current_peer()), ProcessKind.NEGOTIATION, pid)
        return reply_response(reply)

    @bp.get("/transfers/<path:pid>")
    def get_transfer(pid: str) -> Response:
        reply = protocol.describe(caller_of(current_peer()), ProcessKind.TRANSFER, pid)
        return reply_response(reply)

    @bp.post(Path.CATALOG_REQUEST)
    def catalog_request() -> Response:
        body = _json_body(None)
        messages.write("received", request.path, body)
        limit = request.args.get("limit", type=int)
        reply = protocol.catalog_request(
            caller_of(current_peer()),
            body,
            request_url=request.url,
            token=request.args.get(TOKEN_PARAM),
            limit=limit,
        )
        messages.write("answered", request.path, reply.body, reply.status)
        return reply_response(reply)

    @bp.get("/catalog/datasets/<path:dataset_id>")
    def dataset(dataset_id: str) -> Response:
        reply = protocol.dataset(caller_of(current_peer()), dataset_id)
        messages.write("answered", request.path, reply.body, reply.status)
        return reply_response(reply)

    @bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown(rest: str) -> Response:
        err = ProcessNotFoundError(f"no DSP endpoint {request.method} {request.path}")
        return reply_response(Reply(404, error_body(err, _kind_of(request.path))))

    @bp.errorhandler(_Refused)
    def _refused(exc: _Refused) -> Response:
        return reply_response(Reply(exc.err.status, error_body(exc.err, exc.kind)))

    @bp.errorhandler(ProblemError)
    def _auth(exc: ProblemError) -> Response:
        # peer authentication refused the caller: same status and reason, DSP error shape
        reason = str(exc.extensions.get("reason", "unauthorized"))
        err = DspError(exc.detail or exc.title, code=reason.upper())
        response = reply_response(Reply(exc.status, error_body(err, _kind_of(request.path))))
        for key, value in exc.headers.items():
            response.headers[key] = value
        return response

    @bp.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        err: DspError = (
            ProcessNotFoundError(f"no DSP endpoint {request.method} {request.path}")
            if status in (404, 405)
            else DspError(exc.description or exc.name, code=ErrorCode.INVALID_MESSAGE)
        )
        return reply_response(Reply(status, error_body(err, _kind_of(request.path))))

    @bp.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("DSP request failed", exc_info=exc)
        err = DspError("internal error; the request was not applied", code=ErrorCode.INTERNAL)
        return reply_response(Reply(500, error_body(err, _kind_of(request.path))))

    return bp


def version_blueprint(protocol: DspProtocol, *, base_path: str) -> Blueprint:
    """``GET /.well-known/dspace-version`` (public: a peer reads it before it has a token)."""
    bp = Blueprint("dspace_version", __name__)

    @bp.get(WELL_KNOWN_VERSION_PATH)
    def version() -> Response:
        return reply_response(protocol.version(base_path))

    return bp
