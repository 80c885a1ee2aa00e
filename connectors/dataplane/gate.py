"""The enforcement point: may this grant read its asset now? Asked on every access.

Three checks, cheapest first, all failing closed:

1. the transfer process (one primary-key read of ``dsp_transfer_processes``) is ours as
   provider, is STARTED, and is the one the token names (agreement, asset, consumer);
   a suspended, completed or terminated transfer stops access at once;
2. the cn-auto floor, whatever the policy's profile: core data never leaves the node,
   important data crossing its home region needs an export approval in the agreement;
3. the agreement's usage policy through :class:`policies.usage.UsageStore` in scope
   ``usage`` (counts, time windows, purpose, duties, region rules), which also counts the
   use exactly once and refuses agreements that lapsed or were terminated.

The use is counted when access is granted, before any byte is read, so that concurrent
accesses can never exceed a count. An access that then delivers nothing (the source fails
to open, the client is gone before the first chunk) gives its use back through
:meth:`UsageGate.releaser`, in the transaction that records the access.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from connectors import tables as ct
from connectors.dataplane.sources import normalise_address
from connectors.dataplane.tokens import Grant
from connectors.dsp.vocabulary import DSP_ODRL_PROFILE_URL
from policies.cnauto import export_approvals
from policies.errors import PolicyError
from policies.parse import parse_policy
from policies.tables import policy_agreements
from policies.usage import UsageStore

PROVIDER = "provider"
STARTED = "STARTED"
USE = "use"
CATENAX_MARKERS = ("https://w3id.org/catenax/",)
CN_AUTO_PROFILE = "https://w3id.org/autospace/cn-auto/profile"
AGREEMENT_CACHE_SIZE = 10_000


class AccessDenied(Exception):
    """Access refused; ``status`` (401/403/404) and ``reasons`` go into the problem answer."""

    def __init__(self, status: int, title: str, *reasons: str) -> None:
        super().__init__("; ".join(reasons) or title)
        self.status = status
        self.title = title
        self.reasons = tuple(reasons) or (title,)


@dataclass(frozen=True, slots=True)
class TransferView:
    """The provider's transfer process, as the data plane needs it."""

    id: str
    state: str
    agreement_id: str
    asset_id: str | None
    consumer_id: str
    format: str
    data_address: dict[str, Any] | None
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AssetView:
    id: str
    data_address: dict[str, Any]
    classification: str
    home_region: str | None


@dataclass(frozen=True, slots=True)
class AgreementView:
    id: str
    asset_id: str
    consumer_id: str
    policy: dict[str, Any]
    signed_at: datetime


@dataclass(frozen=True, slots=True)
class Permit:
    """A permitted access: what to serve, and for whom."""

    transfer: TransferView
    asset: AssetView
    agreement: AgreementView
    purpose: str | None
    uses: int | None  # unused so far; kept for callers that want the counter
    counted: bool = False  # a use was counted for this access (a HEAD counts none)


def profile_for(policy: Mapping[str, Any]) -> str:
    """The policies profile an agreement is evaluated with.

    Catena-X policies (their context or profile IRI) use ``catenax``; everything else uses
    ``cn-auto``, which is ODRL core plus the classification and region rules.
    """
    marks = [policy.get("profile"), policy.get("@context")]
    flat = repr(marks)
    return "catenax" if any(m in flat for m in CATENAX_MARKERS) else "cn-auto"


def policy_document(policy: Mapping[str, Any]) -> dict[str, Any]:
    """A stored compact DSP policy as JSON-LD the policy engine reads (DSP ODRL context first)."""
    embedded = policy.get("@context")
    extra = [] if embedded is None else embedded if isinstance(embedded, list) else [embedded]
    doc = {k: v for k, v in policy.items() if k != "@context"}
    doc["@context"] = [DSP_ODRL_PROFILE_URL, *(c for c in extra if c != DSP_ODRL_PROFILE_URL)]
    return doc


PURPOSE_OPERANDS = ("purpose", "UsagePurpose")
_PURPOSE_OPERATORS = ("eq", "isAnyOf", "isAllOf", "hasPart")


def _local(term: Any) -> str:
    text = term.get("@id", "") if isinstance(term, dict) else str(term or "")
    return text.rsplit("/", 1)[-1].rsplit("#", 1)[-1].rsplit(":", 1)[-1]


def _values(right: Any) -> list[str]:
    items = right if isinstance(right, list) else [right]
    out = []
    for item in items:
        value = item.get("@value", item.get("@id")) if isinstance(item, dict) else item
        if isinstance(value, str) and value:
            out.append(value)
    return out


def agreed_purposes(policy: Mapping[str, Any]) -> list[str]:
    """The purposes an agreement's permissions name (``purpose``/``UsagePurpose`` eq or
    isAnyOf...), for the usage monitor's template request: the use "as agreed"."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if _local(node.get("leftOperand")) in PURPOSE_OPERANDS and \
                    _local(node.get("operator")) in _PURPOSE_OPERATORS:
                found.extend(v for v in _values(node.get("rightOperand")) if v not in found)
            for key in ("constraint", "and", "or", "xone", "andSequence"):
                walk(node.get(key))

    rules = policy.get("permission")
    for rule in rules if isinstance(rules, list) else [rules]:
        if isinstance(rule, dict):
            walk(rule.get("constraint"))
    return found


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class UsageGate:
    """Decides every access (pull or push) for the provider's data plane.

    Args:
        engine: the node database (connector, policies tables).
        usage: the usage-control store (shares the engine).
        participant_id: our own id (the provider named in agreements).
    """

    def __init__(self, engine: Engine, usage: UsageStore, *, participant_id: str) -> None:
        self.engine = engine
        self.usage = usage
        self.participant_id = participant_id
        self._registered: set[str] = set()
        self._agreements: dict[str, AgreementView] = {}  # agreements never change once made
        self._lock = threading.Lock()

    # -- reads -----------------------------------------------------------------------------
    def transfer(self, transfer_id: str) -> TransferView | None:
        """The provider-side transfer ``transfer_id`` (one indexed read)."""
        tp = ct.transfer_processes
        with self.engine.connect() as conn:
            r = conn.execute(
                select(tp.c.id, tp.c.state, tp.c.role, tp.c.agreement_id, tp.c.dataset_id,
                       tp.c.counter_party_id, tp.c.format, tp.c.data_address, tp.c.extra)
                .where(tp.c.id == transfer_id)
            ).first()
        if r is None or r.role != PROVIDER:
            return None
        extra = r.extra if isinstance(r.extra, dict) else {}
        claims = extra.get("claims")
        return TransferView(r.id, r.state, r.agreement_id, r.dataset_id, r.counter_party_id,
                            r.format, r.data_address, claims if isinstance(claims, dict) else {})

    def state(self, transfer_id: str) -> str | None:
        """Only the state (the mid-stream re-check)."""
        tp = ct.transfer_processes
        with self.engine.connect() as conn:
            return conn.execute(
                select(tp.c.state).where(tp.c.id == transfer_id, tp.c.role == PROVIDER)
            ).scalar()

    def asset(self, asset_id: str) -> AssetView | None:
        a = ct.assets
        with self.engine.connect() as conn:
            r = conn.execute(
                select(a.c.id, a.c.data_address, a.c.classification, a.c.home_region)
                .where(a.c.id == asset_id)
            ).first()
        if r is None:
            return None
        return AssetView(r.id, normalise_address(r.data_address or {}), r.classification,
                         r.home_region)

    def agreement(self, agreement_id: str) -> AgreementView | None:
        cached = self._agreements.get(agreement_id)
        if cached is not None:
            return cached
        ca = ct.contract_agreements
        with self.engine.connect() as conn:
            r = conn.execute(
                select(ca.c.id, ca.c.asset_id, ca.c.consumer_id, ca.c.provider_id, ca.c.policy,
                       ca.c.signed_at).where(ca.c.id == agreement_id)
            ).first()
        if r is None or r.provider_id != self.participant_id:
            return None
        view = AgreementView(r.id, r.asset_id, r.consumer_id, policy_document(r.policy),
                             _aware(r.signed_at))
        with self._lock:
            if len(self._agreements) >= AGREEMENT_CACHE_SIZE:
                self._agreements.clear()  # rare; agreements are re-read on demand
            self._agreements[agreement_id] = view
        return view

    # -- usage control -----------------------------------------------------------------------
    def usage_request(
        self, agreement: AgreementView, asset: AssetView, transfer: TransferView,
        purpose: str | None, action: str = USE,
    ) -> dict[str, Any]:
        """The policies request for one access (docs/policies.md "Request format")."""
        context: dict[str, Any] = {"recipient": transfer.consumer_id, "UsageRestriction": []}
        if purpose:
            context["purpose"] = purpose
            context["UsagePurpose"] = [purpose]
        return {
            "assignee": transfer.consumer_id,
            "action": action,
            "target": agreement.asset_id,
            "context": context,
            "claims": {"participantId": transfer.consumer_id, **dict(transfer.claims)},
            "agreement": {"id": agreement.id, "signedAt": agreement.signed_at.isoformat()},
            "asset": {"classification": asset.classification, "homeRegion": asset.home_region},
        }

    def ensure_registered(self, agreement: AgreementView, template: dict[str, Any]) -> None:
        """Put the agreement under usage control once (idempotent across processes)."""
        if agreement.id in self._registered:
            return
        pa = policy_agreements
        with self.engine.connect() as conn:
            known = conn.execute(
                select(pa.c.agreement_id).where(pa.c.agreement_id == agreement.id)
            ).first()
        if known is None:
            try:
                self.usage.register_agreement(
                    agreement.id, agreement.policy, template, signed_at=agreement.signed_at,
                    profile=profile_for(agreement.policy),
                )
            except IntegrityError:
                pass  # another request or process registered it first
            except PolicyError as exc:
                raise AccessDenied(403, "Policy unusable",
                                   f"the agreement's policy cannot be enforced: {exc}") from None
        with self._lock:
            self._registered.add(agreement.id)

    def floor(self, agreement: AgreementView, asset: AssetView, transfer: TransferView) -> None:
        """cn-auto classification rules, applied whatever profile the policy uses."""
        if asset.classification == "core":
            raise AccessDenied(403, "Forbidden", "core data never leaves the node")
        if asset.classification == "important":
            recipient = transfer.claims.get("region")
            home = asset.home_region
            crossing = not home or not isinstance(recipient, str) or \
                recipient.strip().upper() != home.strip().upper()
            if crossing:
                try:
                    approvals = export_approvals(parse_policy(agreement.policy))
                except PolicyError:
                    approvals = []
                if not approvals:
                    raise AccessDenied(
                        403, "Forbidden",
                        f"important data from region {home or 'unknown'} may leave it only with "
                        "an export approval in the agreement",
                    )

    def check(self, grant: Grant, *, purpose: str | None, count: bool = True) -> Permit:
        """Decide one access for ``grant`` and count it; raise :class:`AccessDenied` if refused."""
        transfer = self.transfer(grant.transfer_id)
        if transfer is None:
            raise AccessDenied(403, "Forbidden", "the transfer process does not exist here")
        if (transfer.agreement_id != grant.agreement_id
                or transfer.consumer_id != grant.consumer_id
                or (transfer.asset_id is not None and transfer.asset_id != grant.asset_id)):
            raise AccessDenied(403, "Forbidden", "the token does not belong to this transfer")
        if transfer.state != STARTED:
            raise AccessDenied(403, "Forbidden",
                               f"the transfer process is {transfer.state}, not STARTED")
        agreement = self.agreement(grant.agreement_id)
        if agreement is None or agreement.asset_id != grant.asset_id \
                or agreement.consumer_id != grant.consumer_id:
            raise AccessDenied(403, "Forbidden", "no such agreement with this consumer")
        asset = self.asset(grant.asset_id)
        if asset is None:
            raise AccessDenied(404, "Not Found", "the asset is no longer offered")
        self.floor(agreement, asset, transfer)
        request = self.usage_request(agreement, asset, transfer, purpose)
        purposes = agreed_purposes(agreement.policy)
        template = self.usage_request(agreement, asset, transfer, purposes[0] if purposes else None)
        if len(purposes) > 1:
            template["context"]["UsagePurpose"] = purposes
        self.ensure_registered(agreement, template)
        if not count:
            return Permit(transfer, asset, agreement, purpose, None)
        decision = self.usage.use(agreement.id, request, scope="usage")
        if not decision.permitted:
            unmet = decision.unmet()
            reason = decision.reason or "denied"
            raise AccessDenied(403, "Usage policy denies access",
                               f"{reason}: {'; '.join(unmet)}" if unmet else reason)
        return Permit(transfer, asset, agreement, purpose, None, counted=True)

    def releaser(self, permit: Permit) -> Callable[[Connection], bool] | None:
        """The step that gives ``permit``'s counted use back (None if it counted none), to
        run in the caller's transaction when the access delivered no byte."""
        if not permit.counted:
            return None
        usage, agreement_id, target = self.usage, permit.agreement.id, permit.agreement.asset_id

        def release(conn: Connection) -> bool:
            return usage.release(agreement_id, target, conn=conn)

        return release
