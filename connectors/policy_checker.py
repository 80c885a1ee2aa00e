"""The node's :class:`~connectors.dsp.policy.PolicyChecker`: ``policies.evaluate`` over
the caller's verified claims.

The DSP machines hand over a compact ODRL policy (DSP context terms, possibly with an
embedded ``@context``), the scope and the verified :class:`Caller`; this module builds the
policy engine's request (docs/policies.md) from what the identity layer verified — never
from what the peer wrote in a message body — and adds what the provider knows itself (the
asset's cn-auto classification and home region, the agreement's signing time). Parsed
policies are cached by their canonical JSON, so a catalog of many offers sharing one
access policy parses it once. Anything unexpected is a deny that says why (fail closed).
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

DEFAULT_PROFILE = "odrl"
POLICY_CACHE_SIZE = 512
# The action a scope asks for: seeing an offer is "access" (ignored by the catalog scope),
# negotiating and transferring are uses of the asset.
_ACTION = {
    PolicyScope.CATALOG: "use",
    PolicyScope.NEGOTIATION: "use",
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

    def parsed(self, policy: Mapping[str, Any]) -> policies.Policy:
        """The parsed policy (cached); raises ``policies.PolicyError`` if unreadable."""
        key = json.dumps(policy, sort_keys=True, separators=(",", ":"))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        parsed = policies.parse_policy(policy_document(policy))
        with self._lock:
            self._cache[key] = parsed
            while len(self._cache) > POLICY_CACHE_SIZE:
                self._cache.popitem(last=False)
        return parsed

    def request_for(
        self, scope: PolicyScope, caller: Caller, context: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The engine request: who (verified), what, on which asset, under which agreement."""
        request: dict[str, Any] = {
            "assignee": caller.participant_id,
            "action": _ACTION.get(scope, "use"),
            "claims": dict(caller.claims),
            "context": {"recipient": caller.participant_id},
        }
        dataset_id = context.get("dataset_id")
        if isinstance(dataset_id, str):
            request["target"] = dataset_id
            with self.store.transaction() as tx:
                asset = tx.get_asset(dataset_id)
                aid = context.get("agreement_id")
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
        try:
            parsed = self.parsed(policy)
        except policies.PolicyError as exc:
            return PolicyDecision.deny(*(f"unreadable policy: {r}" for r in exc.reasons))
        request = self.request_for(scope, caller, context)
        decision = policies.evaluate(
            parsed,
            request,
            {"now": format_xsd_datetime(self.clock())},
            scope=scope.value,
            profile=self.profile,
        )
        if decision.permitted:
            return PolicyDecision.permit()
        return PolicyDecision.deny(decision.reason, *decision.errors)


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
