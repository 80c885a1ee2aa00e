"""What the protocol needs from the policy engine, as interfaces.

The DSP machines never interpret ODRL themselves: they ask a :class:`PolicyChecker`
(backed by ``policies.evaluate`` in the node) whether a caller satisfies a policy, and
compare offers with agreements through a :class:`PolicyNormaliser` (``policies.normalize``
once it exists). :func:`structural_normaliser` is the self-contained default: it makes
order and compact-IRI spelling irrelevant, which is what "compared after normalisation,
not as raw JSON" needs. A checker that raises counts as a deny (fail closed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.dsp.vocabulary import DSP_ODRL_PROFILE_URL, ODRL_NS, PolicyScope

# Properties that identify a policy instance rather than state its terms: an offer and the
# agreement made from it differ exactly here (DSP 2025-1: Agreement adds assigner,
# assignee, timestamp; ids differ; Offer in a catalog has no target).
IDENTITY_KEYS = frozenset({"@id", "@type", "target", "assigner", "assignee", "timestamp", "uid"})
# ODRL properties whose values are sets (a single object means a one-element set).
SET_KEYS = frozenset(
    {
        "permission",
        "prohibition",
        "obligation",
        "duty",
        "constraint",
        "and",
        "or",
        "xone",
        "remedy",
        "consequence",
        "refinement",
        "profile",
    }
)
ORDERED_KEYS = frozenset({"andSequence"})


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified identity of whoever sent a message (from the identity layer, never the body).

    ``claims`` are the verified credential claims the policy engine evaluates (membership,
    framework agreements, region...).
    """

    participant_id: str
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """Allowed or not, and why (reasons are shown to operators and sent in terminations)."""

    allowed: bool
    reasons: tuple[str, ...] = ()

    @classmethod
    def permit(cls) -> PolicyDecision:
        return cls(True)

    @classmethod
    def deny(cls, *reasons: str) -> PolicyDecision:
        return cls(False, reasons or ("denied",))


class PolicyChecker(Protocol):
    """Evaluate ``policy`` (compact ODRL in DSP context terms) for ``caller`` in ``scope``.

    ``context`` carries what the scope knows (dataset id, agreement id, now...). Must
    fail closed: unknown operands or operators are a deny with a reason.
    """

    def __call__(
        self,
        policy: Mapping[str, Any],
        *,
        scope: PolicyScope,
        caller: Caller,
        context: Mapping[str, Any],
    ) -> PolicyDecision: ...


class PolicyNormaliser(Protocol):
    """Map a policy to a value that is equal for two policies with the same terms."""

    def __call__(self, policy: Mapping[str, Any]) -> Any: ...


def check_policy(
    checker: PolicyChecker,
    policy: Mapping[str, Any],
    *,
    scope: PolicyScope,
    caller: Caller,
    context: Mapping[str, Any],
) -> PolicyDecision:
    """Call ``checker``; any exception or non-decision is a deny that says so (fail closed)."""
    try:
        decision = checker(policy, scope=scope, caller=caller, context=context)
    except Exception as exc:
        return PolicyDecision.deny(f"policy evaluation failed: {type(exc).__name__}: {exc}")
    if not isinstance(decision, PolicyDecision):
        return PolicyDecision.deny("policy evaluation returned no decision")
    return decision


def policy_terms(policy: Mapping[str, Any]) -> dict[str, Any]:
    """The terms of a policy: everything but its identity (ids, type, target, parties, time).

    An embedded ``@context`` stays: the terms cannot be read without it.
    """
    return {k: v for k, v in policy.items() if k not in IDENTITY_KEYS}


def same_terms(a: Mapping[str, Any], b: Mapping[str, Any], normaliser: PolicyNormaliser) -> bool:
    """Whether two policies (e.g. an offer and an agreement) state the same terms."""
    try:
        return normaliser(policy_terms(a)) == normaliser(policy_terms(b))
    except Exception:
        return False


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _term(value: str) -> str:
    for prefix in ("odrl:", ODRL_NS):
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def _norm(value: Any, key: str | None = None) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"@id"}:  # {"@id": "use"} and "use" are the same reference
            return _norm(value["@id"], key)
        if set(value) == {"@value"}:
            return _norm(value["@value"], key)
        return {_term(k): _norm(v, _term(k)) for k, v in value.items()}
    if key in SET_KEYS or key in ORDERED_KEYS:
        items = value if isinstance(value, list) else [value]
        normed = [_norm(i) for i in items]
        return normed if key in ORDERED_KEYS else sorted(normed, key=_canonical)
    if isinstance(value, list):
        return [_norm(i) for i in value]
    if isinstance(value, str):
        return _term(value)
    return value


def structural_normaliser(policy: Mapping[str, Any]) -> str:
    """Canonical text of a compact ODRL policy: set order, ``odrl:`` spelling and
    ``{"@id": x}`` vs ``x`` do not matter; ``andSequence`` keeps its order."""
    return _canonical(_norm({k: v for k, v in policy.items() if k != "@context"}))


def engine_normaliser(policy: Mapping[str, Any]) -> Any:
    """``policies.normalize`` for a compact DSP policy (read with the DSP ODRL profile
    context plus any context the policy embeds). Inject this in the node once the policy
    engine is wired; raises ``policies.PolicyError`` on an unreadable policy (which
    :func:`same_terms` counts as "not the same")."""
    import policies  # the library below us; imported lazily so the protocol stays usable alone

    embedded = policy.get("@context")
    extra = [] if embedded is None else embedded if isinstance(embedded, list) else [embedded]
    doc = {**policy_terms(policy), "@context": [DSP_ODRL_PROFILE_URL, *extra], "@type": "Set"}
    return policies.normalize(policies.parse_policy(doc), targets=False)
