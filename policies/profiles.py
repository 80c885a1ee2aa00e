"""Profiles: which left operands exist, where their values come from, in which scopes.

A profile binds each left operand IRI to a *source* (a function of the request and the
state returning the value, or ``MISSING``) or to a *special* evaluator (for operands whose
meaning is not a plain comparison, e.g. Catena-X ``DataUsageEndDurationDays``: "usable for
N days after the agreement"). An operand not bound in the active scope is *unknown*, never
satisfied (EDC's scope filter would silently drop it; we deny).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from policies.model import Constraint
from policies.request import MISSING, Request, State
from policies.values import (
    ANY,
    BOOLEAN,
    DATETIME,
    DECIMAL,
    DURATION,
    INTEGER,
    Duration,
    Incomparable,
    parse_datetime,
)
from policies.vocab import CN, CX, ODRL

SCOPES = ("catalog", "contract.negotiation", "transfer.process", "usage", "monitor")
ALL_SCOPES = frozenset(SCOPES)
NOT_CATALOG = frozenset(SCOPES) - {"catalog"}

Source = Callable[[Request, State], Any]
Special = Callable[[Constraint, Request, State], tuple[bool | None, Any]]


@dataclass(frozen=True, slots=True)
class Operand:
    """A left operand of a profile."""

    iri: str
    kind: str = ANY
    source: Source | None = None
    special: Special | None = None
    scopes: frozenset[str] = ALL_SCOPES
    access: bool = True  # allowed in access (catalog) policies (Catena-X rule)
    usage: bool = True  # allowed in usage (contract) policies


@dataclass(frozen=True)
class Profile:
    """A named set of operands plus profile-wide behaviour."""

    name: str
    operands: dict[str, Operand]
    extension_operands: bool = False  # request context may supply unlisted operands
    gate_obligations: bool = False  # an obligation whose constraint fails denies
    iris: tuple[str, ...] = field(default=())

    def lookup(self, iri: str) -> Operand | None:
        """The operand for ``iri``; a bare name (no scheme) is tried in each namespace."""
        found = self.operands.get(iri)
        if found is None and ":" not in iri and "/" not in iri:
            for ns in (ODRL, CX, CN):
                found = self.operands.get(ns + iri)
                if found is not None:
                    break
        return found


def context_source(iri: str) -> Source:
    def source(req: Request, state: State) -> Any:
        return req.context.get(iri, MISSING)

    return source


def recorded_source(iri: str) -> Source:
    def source(req: Request, state: State) -> Any:
        return state.recorded.get(iri, MISSING)

    return source


def _now(req: Request, state: State) -> Any:
    return state.now


def agreement_start(req: Request, state: State) -> Any:
    """When the agreement was concluded: the state's record wins over the request."""
    if state.agreement_start is not None:
        return state.agreement_start
    signed = req.agreement.get("signedAt") or req.agreement.get("timestamp")
    if isinstance(signed, str):
        try:
            return parse_datetime(signed)
        except Incomparable:
            return MISSING
    return MISSING


def _elapsed(req: Request, state: State) -> Any:
    start = agreement_start(req, state)
    if start is MISSING:
        return MISSING
    seconds = Decimal(str((state.now - start).total_seconds()))
    return Duration(seconds, f"PT{seconds}S")


def _count(req: Request, state: State) -> Any:
    # The use being decided counts: after N recorded uses this one is number N + 1.
    return MISSING if state.count is None else Decimal(state.count + 1)


_ODRL_CONTEXT_OPERANDS = [
    "purpose",
    "recipient",
    "spatial",
    "industry",
    "system",
    "systemDevice",
    "device",
    "deliveryChannel",
    "version",
    "language",
    "media",
    "fileFormat",
    "product",
    "event",
    "language",
    "unitOfCount",
    "virtualLocation",
    "spatialCoordinates",
    "absolutePosition",
    "absoluteSpatialPosition",
    "relativePosition",
    "relativeSpatialPosition",
    "absoluteTemporalPosition",
    "relativeTemporalPosition",
]
_ODRL_NUMERIC = ["payAmount", "percentage", "resolution", "absoluteSize", "relativeSize"]


def _odrl_operands() -> dict[str, Operand]:
    ops: dict[str, Operand] = {}
    for name in _ODRL_CONTEXT_OPERANDS:
        ops[ODRL + name] = Operand(ODRL + name, ANY, context_source(ODRL + name))
    for name in _ODRL_NUMERIC:
        ops[ODRL + name] = Operand(ODRL + name, DECIMAL, context_source(ODRL + name))
    for name in ("delayPeriod", "timeInterval"):
        ops[ODRL + name] = Operand(ODRL + name, DURATION, context_source(ODRL + name))
    # What was paid and how long the asset was used are measured by the node, not declared.
    ops[ODRL + "payAmount"] = Operand(
        ODRL + "payAmount", DECIMAL, recorded_source(ODRL + "payAmount")
    )
    ops[ODRL + "meteredTime"] = Operand(
        ODRL + "meteredTime", DURATION, recorded_source(ODRL + "meteredTime")
    )
    ops[ODRL + "dateTime"] = Operand(ODRL + "dateTime", DATETIME, _now)
    ops[ODRL + "elapsedTime"] = Operand(ODRL + "elapsedTime", DURATION, _elapsed)
    ops[ODRL + "count"] = Operand(ODRL + "count", INTEGER, _count, scopes=NOT_CATALOG)
    return ops


# ---- Catena-X 2025-9 ------------------------------------------------------------------
CX_ACCESS = ("Membership", "FrameworkAgreement", "BusinessPartnerNumber", "BusinessPartnerGroup")
CX_USAGE_CONTEXT = [
    "WarrantyDurationMonths",
    "UsagePurpose",
    "ContractReference",
    "AffiliatesRegion",
    "AffiliatesBpnl",
    "UsageRestriction",
    "DataFrequency",
    "VersionChanges",
    "ContractTermination",
    "ConfidentialInformationMeasures",
    "ConfidentialInformationSharing",
    "ExclusiveUsage",
    "Warranty",
    "WarrantyDefinition",
    "WarrantyDurationMonths",
    "Liability",
    "JurisdictionLocation",
    "JurisdictionLocationReference",
    "Precedence",
    "ManagedLegalEntityBpnl",
    "ManagedLegalEntityRegion",
]
CX_TIME = (
    "DataUsageEndDate",
    "DataUsageEndDurationDays",
    "DataUsageEndDefinition",
    "DataProvisioningEndDate",
    "DataProvisioningEndDurationDays",
)


def _claims_list(*names: str) -> Source:
    def source(req: Request, state: State) -> Any:
        for name in names:
            value = req.claims.get(name)
            if value is not None:
                return list(value) if isinstance(value, list | tuple) else value
        return MISSING

    return source


def _membership(req: Request, state: State) -> Any:
    value = req.claims.get("membership")
    if value is True:
        return "active"
    if value is False:
        return "inactive"
    return value if isinstance(value, str) else MISSING


def _participant(req: Request) -> Any:
    value = req.claims.get("participantId") or req.claims.get("bpn")
    return value if isinstance(value, str) else MISSING


def _bpn(req: Request, state: State) -> Any:
    return _participant(req)


def _bp_groups(req: Request, state: State) -> Any:
    # Groups are the provider's own knowledge (state), keyed by the verified participant id.
    bpn = _participant(req)
    if bpn is MISSING:
        return MISSING
    return sorted(state.memberships.get(bpn, frozenset()))


def _right_text(c: Constraint) -> str | None:
    if len(c.right) != 1:
        return None
    value = c.right[0][0]
    return value if isinstance(value, str) else str(value)


def _until(end: Any, state: State) -> tuple[bool | None, Any]:
    return (state.now <= end), state.now


def _end_date(c: Constraint, req: Request, state: State) -> tuple[bool | None, Any]:
    text = _right_text(c)
    try:
        end = parse_datetime(text) if text else None
    except Incomparable:
        end = None
    if end is None:
        return None, MISSING
    return _until(end, state)


def _end_days(c: Constraint, req: Request, state: State) -> tuple[bool | None, Any]:
    text = _right_text(c)
    start = agreement_start(req, state)
    if text is None or not text.isdigit() or start is MISSING:
        return None, MISSING if start is MISSING else state.now
    return _until(start + timedelta(days=int(text)), state)


def _unlimited(c: Constraint, req: Request, state: State) -> tuple[bool | None, Any]:
    return (_right_text(c) in ("cx.dataUsageEnd.unlimited:1", "cx.dataUsageEnd.unlimited")), None


def _cx_operands() -> dict[str, Operand]:
    ops = _odrl_operands()
    ops[CX + "Membership"] = Operand(CX + "Membership", ANY, _membership)
    ops[CX + "FrameworkAgreement"] = Operand(
        CX + "FrameworkAgreement", ANY, _claims_list("frameworkAgreements", "frameworkAgreement")
    )
    ops[CX + "BusinessPartnerNumber"] = Operand(CX + "BusinessPartnerNumber", ANY, _bpn)
    ops[CX + "BusinessPartnerGroup"] = Operand(CX + "BusinessPartnerGroup", ANY, _bp_groups)
    for name in CX_USAGE_CONTEXT:
        ops[CX + name] = Operand(
            CX + name, ANY, context_source(CX + name), scopes=NOT_CATALOG, access=False
        )
    ops[CX + "DataUsageEndDate"] = Operand(
        CX + "DataUsageEndDate", special=_end_date, scopes=NOT_CATALOG, access=False
    )
    ops[CX + "DataProvisioningEndDate"] = Operand(
        CX + "DataProvisioningEndDate", special=_end_date, scopes=NOT_CATALOG, access=False
    )
    for name in ("DataUsageEndDurationDays", "DataProvisioningEndDurationDays"):
        ops[CX + name] = Operand(CX + name, special=_end_days, scopes=NOT_CATALOG, access=False)
    ops[CX + "DataUsageEndDefinition"] = Operand(
        CX + "DataUsageEndDefinition", special=_unlimited, scopes=NOT_CATALOG, access=False
    )
    return ops


# ---- cn-auto (ours) ----------------------------------------------------------------------
CLASSIFICATIONS = ("general", "important", "core")  # 一般 / 重要 / 核心
CLASSIFICATION_ALIASES = {"一般": "general", "重要": "important", "核心": "core"}
FEDERATED_COMPUTE = CN + "federatedCompute"
#: Limits of a federated round (cohort size, secure aggregation on, epsilon spent after the
#: round). Only a round binds them: the data owner's guard checks them before contributing,
#: with the round's values in the request context. Like Catena-X usage-context operands they
#: are usage-time operands: unknown in the catalog, and the connector defers them while
#: negotiating (``connectors.policy_checker.DEFERRED_TO_ROUND``); a transfer cannot bind
#: them, so a policy carrying them never lets data be transferred (fail closed).
FEDERATED_ROUND_OPERANDS = (
    (CN + "cohortSize", INTEGER),
    (CN + "secureAggregation", BOOLEAN),
    (CN + "epsilon", DECIMAL),
)


def _asset_field(name: str) -> Source:
    def source(req: Request, state: State) -> Any:
        value = req.asset.get(name)
        if name == "classification" and isinstance(value, str):
            value = CLASSIFICATION_ALIASES.get(value, value)
        return value if value is not None else MISSING

    return source


def _cn_operands() -> dict[str, Operand]:
    ops = _odrl_operands()
    ops[CN + "classification"] = Operand(CN + "classification", ANY, _asset_field("classification"))
    ops[CN + "homeRegion"] = Operand(CN + "homeRegion", ANY, _asset_field("homeRegion"))
    ops[CN + "recipientRegion"] = Operand(CN + "recipientRegion", ANY, _claims_list("region"))
    for iri, kind in FEDERATED_ROUND_OPERANDS:
        ops[iri] = Operand(iri, kind, context_source(iri), scopes=NOT_CATALOG, access=False)
    return ops


PROFILES: dict[str, Profile] = {
    "odrl": Profile(
        "odrl",
        _odrl_operands(),
        extension_operands=True,
        iris=("http://www.w3.org/ns/odrl/2/core",),
    ),
    "catenax": Profile(
        "catenax",
        _cx_operands(),
        gate_obligations=True,
        iris=("https://w3id.org/catenax/2025/9/policy/profile",),
    ),
    "cn-auto": Profile("cn-auto", _cn_operands(), iris=(CN + "profile",)),
}


def get_profile(name: str) -> Profile:
    """Return the profile called ``name`` (odrl, catenax, cn-auto).

    Raises:
        ValueError: unknown profile name.
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; expected one of {', '.join(PROFILES)}"
        ) from None
