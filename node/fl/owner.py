"""The data owner's side: answers a coordinator's round messages under its agreement.

``OwnerService.handle(body, caller)`` is what ``POST /peer/fl/messages`` calls. It checks
that the authenticated caller is the header's sender and that the message is addressed to
this node, then hands it to a :class:`federated.participant.Participant` — one per
(coordinator, task), built from the node's private copy of the asset named in the offer. The
round guard reads the agreement the task cites from this node's connector store and turns its
policy into :class:`federated.guard.AgreementLimits` (see :mod:`node.fl.limits`); refusals go
back to the coordinator with every reason. The epsilon budget is persisted per agreement.

Round state (SecAgg+ keys and shares) lives in this process's memory on purpose: secrets of a
round should not outlive it on disk. A node serving rounds therefore runs one server process
per address (several threads are fine), or routes a coordinator sticky to one process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.store import ConnectorStore
from connectors.identity.trust import PeerClaims
from federated import store as fl_store
from federated.data import Dataset, read_csv
from federated.errors import FederatedError, TaskFileError
from federated.guard import GuardDecision, RoundContext, RoundGuard
from federated.participant import Participant
from federated.privacy import PrivacyAccountant
from federated.vocabulary import Header, Message, Refusal, RoundAccept, RoundOffer
from node.fl.limits import PolicyLimitError, limits_from_policy
from node.fl.transport import Directory

log = logging.getLogger("autospace.fl")
#: Data-address types an owner reads training data from (a local CSV file).
FILE_TYPES = frozenset({"File", "Csv", "CSV", "LocalFile"})
DATA_DIR = "fl-data"  # fallback: <home>/fl-data/<asset>.csv
#: A (coordinator, task) with no message for this long is forgotten (its open round aborts).
SESSION_IDLE_SECONDS = 3600.0


class DataUnavailable(FederatedError):
    """This node holds no readable private data for the asset a task names."""


def dataset_path(home: Path, asset_id: str, data_address: dict[str, Any] | None) -> Path:
    """Where the private CSV of ``asset_id`` lives: its File data address, else
    ``<home>/fl-data/<asset>.csv``."""
    if data_address and data_address.get("type") in FILE_TYPES:
        raw = data_address.get("path") or data_address.get("baseUrl") or ""
        raw = str(raw).removeprefix("file://")
        if not raw:
            raise DataUnavailable(f"asset {asset_id!r} has a File data address without a path")
        path = Path(raw)
        return path if path.is_absolute() else home / path
    safe = "".join(ch for ch in asset_id if ch.isalnum() or ch in "-_.")
    if not safe or safe != asset_id:
        raise DataUnavailable(f"asset {asset_id!r} has no File data address")
    return home / DATA_DIR / f"{safe}.csv"


def cited_agreement(engine: Engine, asset_id: str, agreement_id: str | None,
                    caller: PeerClaims, own_ids: frozenset[str]
                    ) -> tuple[ContractAgreement | None, list[str]]:
    """The agreement an offer cites if it binds this node, the caller and the asset; else
    the reasons it does not (checked before any private data is touched)."""
    if not agreement_id:
        return None, ["the round cites no contract agreement; this node contributes only "
                      "under a finalized agreement"]
    with ConnectorStore(engine).transaction() as tx:
        asset = tx.get_asset(asset_id)
        found = [a for a in tx.find_agreements(asset_id=asset_id) if a.id == agreement_id]
    if asset is None:
        return None, [f"asset {asset_id!r} is not offered by this node"]
    if not found:
        return None, [f"no finalized agreement {agreement_id!r} for asset {asset_id!r} in "
                      "this node's store"]
    agreement = found[0]
    reasons = []
    if agreement.consumer_id not in (caller.participant_id, caller.caller_did):
        reasons.append(f"agreement {agreement.id} was made with {agreement.consumer_id}, "
                       f"not with the coordinator {caller.participant_id}")
    if agreement.provider_id not in own_ids:
        reasons.append(f"agreement {agreement.id} names provider {agreement.provider_id}, "
                       "not this node")
    return (None, reasons) if reasons else (agreement, [])


def agreement_guard(engine: Engine, caller: PeerClaims, own_ids: frozenset[str],
                    clock: Callable[[], float]) -> RoundGuard:
    """A round guard checking each offer against the agreement it cites (fails closed)."""

    def guard(ctx: RoundContext) -> GuardDecision:
        agreement, reasons = cited_agreement(engine, ctx.asset, ctx.agreement, caller, own_ids)
        if agreement is None:
            return GuardDecision.deny(*reasons)
        try:
            limits = limits_from_policy(agreement.policy, agreement.id)
        except PolicyLimitError as exc:
            return GuardDecision.deny(str(exc))
        return limits.check(ctx, datetime.fromtimestamp(clock(), UTC))

    return guard


@dataclass
class _Session:
    participant: Participant
    asset: str
    last_used: float = 0.0


class OwnerService:
    """Serves every coordinator's rounds on this node (thread-safe, one lock)."""

    def __init__(self, *, engine: Engine, home: Path, did: str, participant_id: str,
                 signer: Callable[[bytes], bytes], directory: Directory,
                 clock: Callable[[], float]) -> None:
        self.engine = engine
        self.home = home
        self.own_ids = frozenset({did, participant_id})
        self.signer = signer
        self.directory = directory
        self.clock = clock
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._data: dict[tuple[Path, str], tuple[float, Dataset]] = {}
        self._lock = threading.Lock()

    def handle(self, message: Message, caller: PeerClaims) -> Message:
        """The reply to one coordinator message (never raises)."""
        h: Header = message.header
        reply_header = Header(h.task_id, h.round, h.stage, h.recipient, h.sender)
        if h.sender not in (caller.caller_did, caller.participant_id):
            return Refusal(reply_header, f"message sender {h.sender} is not the authenticated "
                                         f"caller {caller.caller_did}")
        if h.recipient not in self.own_ids:
            return Refusal(reply_header, f"message is addressed to {h.recipient}, not this node")
        log.info("fl message %s", h.stage.value, extra={"fields": {
            "event": "fl_message", "stage": h.stage.value, "task": h.task_id, "round": h.round,
            "coordinator": h.sender}})
        with self._lock:
            try:
                if isinstance(message, RoundOffer):
                    reply = self._offer(message, caller)
                else:
                    session = self._sessions.get((h.sender, h.task_id))
                    if session is None:
                        return Refusal(reply_header, f"no open round {h.task_id}#{h.round} "
                                                     f"with {h.sender}")
                    session.last_used = self.clock()
                    reply = session.participant.handle(message)
            except FederatedError as exc:
                reply = Refusal(reply_header, str(exc))
            except Exception as exc:  # never let one bad round take the endpoint down
                log.exception("fl message %s from %s failed", h.stage.value, h.sender)
                reply = Refusal(reply_header, f"internal error at the data owner: "
                                              f"{type(exc).__name__}")
        if isinstance(reply, Refusal):
            log.info("fl refusal: %s", reply.reason, extra={"fields": {
                "event": "fl_refusal", "stage": h.stage.value, "task": h.task_id,
                "round": h.round, "coordinator": h.sender, "reason": reply.reason}})
        return reply

    def _dataset(self, asset_id: str, label: str) -> Dataset:
        with ConnectorStore(self.engine).transaction() as tx:
            asset = tx.get_asset(asset_id)
        path = dataset_path(self.home, asset_id, asset.data_address if asset else None)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            raise DataUnavailable(f"no private data for asset {asset_id!r} on this node "
                                  f"(looked for {path.name})") from None
        cached = self._data.get((path, label))
        if cached is None or cached[0] != mtime:
            try:
                cached = (mtime, read_csv(path, label))
            except TaskFileError as exc:
                raise DataUnavailable("; ".join(exc.problems)) from None
            self._data[(path, label)] = cached
        return cached[1]

    def _offer(self, offer: RoundOffer, caller: PeerClaims) -> Message:
        h = offer.header
        key = (h.sender, h.task_id)
        now = self.clock()
        for stale in [k for k, v in self._sessions.items()
                      if now - v.last_used > SESSION_IDLE_SECONDS]:
            del self._sessions[stale]
        _, reasons = cited_agreement(self.engine, offer.asset, offer.agreement or None, caller,
                                     self.own_ids)
        if reasons:  # refuse before any private data is read
            return Refusal(Header(h.task_id, h.round, h.stage, h.recipient, h.sender),
                           "; ".join(reasons))
        session = self._sessions.get(key)
        if session is None or session.asset != offer.asset:
            data = self._dataset(offer.asset, offer.label)
            participant = Participant(h.recipient, data, self.signer, {},
                                      agreement_guard(self.engine, caller, self.own_ids,
                                                      self.clock))
            session = self._sessions[key] = _Session(participant, offer.asset)
        session.last_used = now
        participant = session.participant
        participant.guard = agreement_guard(self.engine, caller, self.own_ids, self.clock)
        keys = {}
        for pid in offer.cohort:
            keys[pid] = self.directory.identity_key(pid)  # FederatedError -> refusal
        participant.identity_keys = keys
        dp = offer.dp_clip_norm > 0
        if dp and offer.agreement:
            with self.engine.connect() as conn:
                restored = fl_store.load_accountant(conn, offer.agreement)
            participant.accountants[h.task_id] = restored or PrivacyAccountant(
                offer.dp_noise_multiplier)
        reply = participant.handle(offer)
        if isinstance(reply, RoundAccept) and dp and offer.agreement:
            with self.engine.begin() as conn:
                spent = fl_store.save_accountant(conn, offer.agreement, h.task_id,
                                                 participant.accountants[h.task_id],
                                                 offer.dp_delta)
            log.info("fl epsilon spent agreement=%s epsilon=%.4g", offer.agreement, spent)
        return reply
