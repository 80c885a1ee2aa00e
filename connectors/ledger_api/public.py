"""Public, unauthenticated log endpoints (``/ledger``): checkpoint and RFC 9162 proofs.

| route | answer |
|---|---|
| ``GET /ledger`` | JSON: origin, verifier key, tree size, chain backend, newest anchor |
| ``GET /ledger/checkpoint[?size=N]`` | ``text/plain`` signed note (current tree, or size N) |
| ``GET /ledger/proof/inclusion?index=I[&size=N]`` | ``{"leaf_index","tree_size","proof"}`` |
| ``GET /ledger/proof/consistency?first=A&second=B`` | ``{"first","second","proof"}`` |

Proof hashes are base64. A size beyond the tree or an index outside it is a 404, a
malformed or out-of-range parameter a 400 — both ``application/problem+json``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from connectors.ledger_api.problems import ledger_errors, refuse_unknown, uint_param
from connectors.ledger_api.service import LedgerService

PREFIX = "/ledger"
NOTE_MIMETYPE = "text/plain; charset=utf-8"


def public_blueprint(service: LedgerService) -> Blueprint:
    """Routes anyone may call: nothing here reveals a record or a salt."""
    bp = Blueprint("ledger_public", __name__, url_prefix=PREFIX)

    @bp.after_request
    def _no_store(response: Response) -> Response:
        # The log grows: caches must not serve an old tree as the current one.
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @bp.get("")
    def info() -> Any:
        refuse_unknown(request.args, set())
        with ledger_errors():
            return jsonify(service.info())

    @bp.get("/checkpoint")
    def checkpoint() -> Any:
        refuse_unknown(request.args, {"size"})
        with ledger_errors():
            if request.args.get("size"):
                cp = service.checkpoint_at(uint_param(request.args, "size"))
            else:
                cp = service.current_checkpoint()
        return Response(cp.note, mimetype="text/plain", content_type=NOTE_MIMETYPE)

    @bp.get("/proof/inclusion")
    def inclusion() -> Any:
        refuse_unknown(request.args, {"index", "size"})
        index = uint_param(request.args, "index")
        size = uint_param(request.args, "size") if request.args.get("size") else None
        with ledger_errors():
            return jsonify(service.inclusion_proof(index, size))

    @bp.get("/proof/consistency")
    def consistency() -> Any:
        refuse_unknown(request.args, {"first", "second"})
        first = uint_param(request.args, "first")
        second = uint_param(request.args, "second")
        with ledger_errors():
            return jsonify(service.consistency_proof(first, second))

    return bp
