"""cn-auto: data classification and cross-border rules (our China automotive profile).

Assets carry a classification level: general / important / core (一般 / 重要 / 核心 数据).
- general data follows the policy alone;
- important data may reach a recipient outside the asset's home region only when the
  policy (the agreement) carries an export approval reference (``cn:exportApproval``);
- core data never leaves the node: outside the catalog, only ``cn:federatedCompute``
  (computation that runs where the data is) may use it.
A missing classification or region is not a pass: it denies. Every decision that crosses
(or may cross) a region border yields an export record for the export log.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from policies.decision import Decision
from policies.model import Policy, iter_constraints
from policies.profiles import CLASSIFICATION_ALIASES, CLASSIFICATIONS, FEDERATED_COMPUTE
from policies.request import Request, State
from policies.values import display
from policies.vocab import CN, ODRL, short

EXPORT_APPROVAL = CN + "exportApproval"


def export_approvals(policy: Policy) -> list[str]:
    """Export approval references the policy carries (property or ``eq`` constraint)."""
    refs: list[str] = []
    for key, values in policy.properties:
        if key == EXPORT_APPROVAL:
            for v in values if isinstance(values, list) else [values]:
                if isinstance(v, dict):
                    ref = v.get("@value", v.get("@id"))
                    if isinstance(ref, str) and ref.strip():
                        refs.append(ref.strip())
    for rule in policy.permissions:
        for c in iter_constraints(rule.constraints):
            if c.left == EXPORT_APPROVAL and c.operator == ODRL + "eq":
                refs.extend(str(v) for v, _ in c.right if str(v).strip())
    return refs


def _region(value: Any) -> str | None:
    return value.strip().upper() if isinstance(value, str) and value.strip() else None


def apply_region_rules(decision: Decision, policy: Policy, req: Request, state: State) -> Decision:
    """Apply the classification and region rules on top of the ODRL decision.

    A catalog decision about no asset in particular (a connector checks an access policy
    once per contract definition, before listing any asset under it) is left to the
    policy: classification and region govern uses of an asset, not who may see offers.
    """
    if decision.scope == "catalog" and not req.asset:
        return decision
    raw = req.asset.get("classification")
    level = CLASSIFICATION_ALIASES.get(raw, raw) if isinstance(raw, str) else None
    if level not in CLASSIFICATIONS:
        return replace(
            decision,
            permitted=False,
            reason="asset has no valid data classification (general / important / core)",
        )
    home = _region(req.asset.get("homeRegion"))
    recipient = _region(req.claims.get("region"))
    cross = home is None or recipient is None or home != recipient
    permitted, reason = decision.permitted, decision.reason
    approvals = export_approvals(policy)
    if level == "core" and decision.scope != "catalog" and FEDERATED_COMPUTE not in req.actions:
        permitted = False
        reason = "core data never leaves the node; only cn:federatedCompute may use it"
    elif (
        level == "important"
        and cross
        and permitted
        and decision.scope != "catalog"
        and not approvals
    ):
        permitted = False
        reason = (
            f"important data from region {home or 'unknown'} may reach region "
            f"{recipient or 'unknown'} only with an export approval reference in the agreement"
        )
    export = None
    if cross:
        export = {
            "asset": req.target,
            "classification": level,
            "homeRegion": home,
            "recipientRegion": recipient,
            "recipient": req.assignee,
            "action": short(req.action),
            "approval": approvals[0] if approvals else None,
            "permitted": permitted,
            "reason": reason,
            "policy": policy.uid,
            "scope": decision.scope,
            "time": display(state.now),
        }
    return replace(decision, permitted=permitted, reason=reason, export=export)
