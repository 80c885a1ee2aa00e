"""Entries of the log for the parties to a record and for auditors (peer surface).

| route | answer |
|---|---|
| ``GET /ledger/entries/{leafIndex}`` | the entry (record, salt, leaf hash) — 403 for a non-party |
| ``GET /ledger/records/{recordId}`` | the same, by record id — 404 when unknown *or* not yours |
| ``GET /ledger/records/{recordId}/bundle[?size=N]`` | the proof bundle of that record |

Leaf indices are public (the tree size is), so refusing one says nothing new; record ids
may be business identifiers, so a non-party cannot tell an unknown id from a refused one.
The caller is the verified peer (token + membership credential, checked by the node
before these views run); the rule is :mod:`connectors.ledger_api.access`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from connectors.http.logs import security_event
from connectors.http.peer import current_peer
from connectors.http.problem import ProblemError
from connectors.ledger_api.problems import ledger_errors, refuse_unknown, uint_param
from connectors.ledger_api.service import LedgerService, entry_json
from ledger.log import Entry

PREFIX = "/ledger"


def peer_blueprint(service: LedgerService) -> Blueprint:
    bp = Blueprint("ledger_peer", __name__, url_prefix=PREFIX)

    def _check(entry: Entry, *, hide: bool) -> None:
        peer = current_peer()
        decision = service.may_read(entry, participant_id=peer.participant_id,
                                    did=peer.caller_did, role=peer.role.value)
        if decision.allowed:
            return
        security_event("ledger_entry_refused", caller=peer.caller_did,
                       participant=peer.participant_id, leaf_index=entry.leaf_index,
                       reason=decision.reason)
        if hide:
            raise ProblemError(404, "Not Found",
                               "no record with this id that you may read; only the parties "
                               "to a record and auditors may read it")
        raise ProblemError(403, "Forbidden", decision.reason)

    def _by_id(record_id: str) -> Entry:
        try:
            with ledger_errors():
                entry = service.entry(record_id=record_id)
        except ProblemError as exc:
            if exc.status == 404:  # same answer as a refusal: ids must not leak
                raise ProblemError(404, "Not Found",
                                   "no record with this id that you may read; only the "
                                   "parties to a record and auditors may read it") from None
            raise
        _check(entry, hide=True)
        return entry

    @bp.get("/entries/<leaf_index>")
    def by_index(leaf_index: str) -> Any:
        refuse_unknown(request.args, set())
        index = uint_param({"leafIndex": leaf_index}, "leafIndex")
        with ledger_errors():
            entry = service.entry(leaf_index=index)
        _check(entry, hide=False)
        return jsonify(entry_json(entry))

    @bp.get("/records/<path:record_id>/bundle")
    def bundle(record_id: str) -> Any:
        refuse_unknown(request.args, {"size"})
        size = uint_param(request.args, "size") if request.args.get("size") else None
        entry = _by_id(record_id)
        with ledger_errors():
            return jsonify(service.bundle(entry.record_id, size))

    @bp.get("/records/<path:record_id>")
    def by_record(record_id: str) -> Any:
        refuse_unknown(request.args, set())
        return jsonify(entry_json(_by_id(record_id)))

    return bp
