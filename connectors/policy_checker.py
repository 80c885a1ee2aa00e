"""The node's :class:`~connectors.dsp.policy.PolicyChecker`: ``policies.evaluate`` over
the caller's verified claims.

The DSP machines hand over a compact ODRL policy (DSP context terms, possibly with an
embedded ``@context``), the scope and the verified :class:`Caller`; this module builds the
policy engine's request (docs/policies.md) from what the identity layer verified — never
from what the peer wrote in a message body — and adds what the provider knows itself (the
asset's cn-auto classification and home region, the agreement's signing time). Parsed
policies are cached by their canonical JSON, and by their terms without target and
parties (bound per use), so a catalog of many offers sharing one access policy, and the
negotiations for many assets under one contract policy, parse it once. Anything
unexpected is a deny that says why (fail closed).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import policies
from connectors.dsp.policy import Caller, PolicyDecision
from connectors.dsp.store import ConnectorStore
from connectors.dsp.timestamps import format_xsd_datetime
from connectors.dsp.vocabulary import DSP_ODRL_PROFILE_URL, PolicyScope
from connectors.identity.trust import PeerClaims
from connectors.policy_templates import PolicyTemplates
from policies.vocab import ODRL

DEFAULT_PROFILE = "odrl"
POLICY_CACHE_SIZE = 512
#: Left operands only a use of the data can bind (how many uses so far, the purpose the
#: consumer states when it accesses the data). Before any use — negotiating an agreement,
#: starting a transfer — they cannot be evaluated; the data plane enforces them on every
#: access (``connectors.dataplane.gate``), so these scopes leave them out when they are
#: direct conjuncts of a permission (inside ``or``/``xone`` they stay, and deny: fail closed).
DEFERRED_TO_USE = frozenset({"count", "purpose", "UsagePurpose"})
#: Left operands only a federated round binds (cn-auto; ``policies.profiles``): the data
#: owner's round guard checks each round against the agreement (``node.fl.owner``). An
#: agreement for federated computation is negotiated before any round, so negotiation
#: leaves them out (as direct conjuncts of a permission); a transfer cannot bind them, so
#: there they stay and deny (fail closed).
DEFERRED_TO_ROUND = frozenset({"cohortSize", "secureAggregation", "epsilon"})
_DEFERRING_SCOPES = frozenset({PolicyScope.NEGOTIATION, PolicyScope.TRANSFER})
USE = ODRL + "use"
# The action a scope asks for: seeing an offer is "access" (ignored by the catalog scope);
# a transfer is a use of the asset. Negotiating asks for what the offer permits
# (:func:`offered_actions`).
_ACTION = {
    PolicyScope.CATALOG: "use",
    PolicyScope.TRANSFER: "use",
}


def claims_of(peer: PeerClaims) -> dict[str, Any]:
    """The policy engine's ``claims`` for a verified peer (membership credential facts)."""
    return {
        "participantId": peer.participant_id,
        "did": peer.caller_did,
        "name": peer.name,
        "membership": True,
        "role": [peer.role.value],
        "region": peer.region,
        "credentialIssuer": peer.credential_issuer,
    }


def caller_of(peer: PeerClaims) -> Caller:
    """The DSP caller for a verified peer: its participant id and its claims."""
    return Caller(participant_id=peer.participant_id, claims=claims_of(peer))


def _local_name(term: Any) -> str:
    text = term.get("@id", "") if isinstance(term, dict) else str(term or "")
    return text.rsplit("/", 1)[-1].rsplit("#", 1)[-1].rsplit(":", 1)[-1]


def without_use_constraints(
    policy: Mapping[str, Any], deferred: frozenset[str] = DEFERRED_TO_USE
) -> dict[str, Any]:
    """``policy`` without the permissions' top-level constraints on ``deferred`` operands
    (a permission's constraint list is a conjunction, so dropping one only defers it to
    the check at each use: the data plane's, or the round guard's)."""

    def strip(rule: Any) -> Any:
        if not isinstance(rule, dict):
            return rule
        out = dict(rule)
        for key in ("constraint", "odrl:constraint"):
            items = rule.get(key)
            if items is None:
                continue
            listed = items if isinstance(items, list) else [items]
            kept = [c for c in listed if not (
                isinstance(c, dict) and "leftOperand" in c
                and _local_name(c.get("leftOperand")) in deferred)]
            if kept:
                out[key] = kept
            else:
                out.pop(key)
        return out

    doc = dict(policy)
    for key in ("permission", "odrl:permission"):
        rules = policy.get(key)
        if rules is not None:
            doc[key] = [strip(r) for r in rules] if isinstance(rules, list) else strip(rules)
    return doc


def offered_actions(parsed: policies.Policy) -> tuple[str, ...]:
    """The actions negotiating ``parsed`` asks for: ``use`` when a permission grants it (or
    names no action), else each distinct action its permissions grant (e.g. only
    ``cn:federatedCompute``: an agreement for computation where the data is)."""
    actions: list[str] = []
    for rule in parsed.permissions:
        if not rule.actions:
            return ("use",)
        for action in rule.actions:
            if action.iri == USE:
                return ("use",)
            if action.iri not in actions:
                actions.append(action.iri)
    return tuple(actions) or ("use",)


def policy_document(policy: Mapping[str, Any]) -> dict[str, Any]:
    """A stored compact policy as a JSON-LD document the engine can read (DSP ODRL profile
    context first, then any context the policy embeds)."""
    embedded = policy.get("@context")
    extra = [] if embedded is None else embedded if isinstance(embedded, list) else [embedded]
    contexts = [DSP_ODRL_PROFILE_URL, *(c for c in extra if c != DSP_ODRL_PROFILE_URL)]
    doc = {k: v for k, v in policy.items() if k != "@context"}
    doc.setdefault("@type", "Set")
    doc["@context"] = contexts
    return doc


class EnginePolicyChecker:
    """Decide with ``policies.evaluate`` in the configured profile.

    Args:
        store: read the asset a decision is about (classification, home region).
        profile: ``odrl``, ``catenax`` or ``cn-auto``.
        clock: the node's clock (UTC datetimes) for time constraints.
    """

    def __init__(
        self,
        store: ConnectorStore,
        *,
        profile: str = DEFAULT_PROFILE,
        clock: Callable[[], datetime],
    ) -> None:
        policies.get_profile(profile)  # an unknown profile is a configuration error at start
        self.store = store
        self.profile = profile
        self.clock = clock
        self._cache: OrderedDict[str, policies.Policy] = OrderedDict()
        self._lock = threading.Lock()
        self.templates = PolicyTemplates(policy_document, POLICY_CACHE_SIZE)

    def parsed(self, policy: Mapping[str, Any]) -> policies.Policy:
        """The parsed policy (cached); raises ``policies.PolicyError`` if unreadable.

        Two caches: the whole policy (a repeated check reuses the parse and its compiled
        forms), then its terms without ``target``/``assigner``/``assignee``, which each
        offer of a contract definition shares (:mod:`connectors.policy_templates`)."""
        key = json.dumps(policy, sort_keys=True, separators=(",", ":"))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        parsed = self.templates(policy)
        with self._lock:
            self._cache[key] = parsed
            while len(self._cache) > POLICY_CACHE_SIZE:
                self._cache.popitem(last=False)
        return parsed

    def request_for(
        self, scope: PolicyScope, caller: Caller, context: Mapping[str, Any],
        action: str | None = None,
    ) -> dict[str, Any]:
        """The engine request: who (verified), what, on which asset, under which agreement."""
        request: dict[str, Any] = {
            "assignee": caller.participant_id,
            "action": action or _ACTION.get(scope, "use"),
            "claims": dict(caller.claims),
            "context": {"recipient": caller.participant_id},
        }
        dataset_id = context.get("dataset_id")
        if isinstance(dataset_id, str):
            request["target"] = dataset_id
            asset = context.get("asset")  # read by the caller's own transaction
            if getattr(asset, "id", None) != dataset_id:
                asset = None
            aid = context.get("agreement_id")
            agreement = None
            if asset is None or isinstance(aid, str):
                with self.store.transaction() as tx:
                    if asset is None:
                        asset = tx.get_asset(dataset_id)
                    agreement = tx.get_agreement(aid) if isinstance(aid, str) else None
            if asset is not None:
                request["asset"] = {"classification": asset.classification.value}
                if asset.home_region:
                    request["asset"]["homeRegion"] = asset.home_region
            if agreement is not None:
                request["agreement"] = {
                    "id": agreement.id,
                    "signedAt": format_xsd_datetime(agreement.signed_at),
                }
        return request

    def __call__(
        self,
        policy: Mapping[str, Any],
        *,
        scope: PolicyScope,
        caller: Caller,
        context: Mapping[str, Any],
    ) -> PolicyDecision:
        if scope in _DEFERRING_SCOPES:
            policy = without_use_constraints(policy)
        if scope == PolicyScope.NEGOTIATION:
            policy = without_use_constraints(policy, DEFERRED_TO_ROUND)
        try:
            parsed = self.parsed(policy)
        except policies.PolicyError as exc:
            return PolicyDecision.deny(*(f"unreadable policy: {r}" for r in exc.reasons))
        # Negotiating concludes every permission of the offer: each action it grants must be
        # permitted to the caller (with ``use`` among them, ``use`` decides, as before).
        actions = offered_actions(parsed) if scope == PolicyScope.NEGOTIATION else (None,)
        for action in actions:
            request = self.request_for(scope, caller, context, action)
            decision = policies.evaluate(
                parsed,
                request,
                {"now": format_xsd_datetime(self.clock())},
                scope=scope.value,
                profile=self.profile,
            )
            if not decision.permitted:
                return PolicyDecision.deny(decision.reason, *decision.errors)
        return PolicyDecision.permit()


class CachedNormaliser:
    """A :class:`~connectors.dsp.policy.PolicyNormaliser` remembering its last results.

    Offers, requests and agreements of one contract definition carry the same terms, so
    the (JSON-LD) normalisation of those terms is computed once, not at every message.
    Exceptions are not cached (the caller counts them as "not the same terms").
    """

    def __init__(self, normaliser: Callable[[Mapping[str, Any]], Any],
                 size: int = POLICY_CACHE_SIZE) -> None:
        self.normaliser = normaliser
        self.size = size
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, policy: Mapping[str, Any]) -> Any:
        key = json.dumps(policy, sort_keys=True, separators=(",", ":"))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = self.normaliser(policy)
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return value
