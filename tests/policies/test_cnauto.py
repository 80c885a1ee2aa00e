"""cn-auto: classification levels (一般 / 重要 / 核心) and cross-border rules."""

from __future__ import annotations

import pytest

from policies import evaluate, parse_policy, validate_policy
from policies.jsonld import ODRL_CONTEXT_URL
from policies.vocab import CN

NOW = "2025-06-01T00:00:00Z"


def agreement(approval: str | None = None, action: str = "use") -> dict:
    doc = {
        "@context": [ODRL_CONTEXT_URL, {"cn": CN}],
        "@type": "Agreement",
        "uid": "urn:agr:1",
        "assigner": "urn:party:oem",
        "assignee": "urn:party:supplier",
        "permission": [{"target": "urn:asset:battery", "action": action}],
    }
    if approval:
        doc["cn:exportApproval"] = approval
    return doc


def request(
    level: str, recipient_region: str = "CN", action: str = "use", home: str = "CN"
) -> dict:
    return {
        "assignee": "urn:party:supplier",
        "action": action,
        "target": "urn:asset:battery",
        "claims": {"region": recipient_region},
        "asset": {"classification": level, "homeRegion": home},
    }


def decide(pol: dict, req: dict, scope: str = "transfer.process"):
    return evaluate(parse_policy(pol), req, {"now": NOW}, scope=scope, profile="cn-auto")


def test_general_data_follows_the_policy_but_crossings_are_recorded() -> None:
    same = decide(agreement(), request("general"))
    assert same.permitted and same.export is None
    abroad = decide(agreement(), request("一般", "DE"))
    assert abroad.permitted
    assert abroad.export["classification"] == "general" and abroad.export["recipientRegion"] == "DE"


def test_important_data_needs_an_export_approval_to_leave_its_region() -> None:
    denied = decide(agreement(), request("important", "DE"))
    assert not denied.permitted and "export approval" in denied.reason
    assert denied.export["permitted"] is False
    approved = decide(agreement("CAC-2025-0042"), request("重要", "DE"))
    assert approved.permitted and approved.export["approval"] == "CAC-2025-0042"
    assert decide(agreement(), request("important", "CN")).permitted


def test_unknown_region_counts_as_crossing() -> None:
    req = request("important")
    req["claims"] = {}
    d = decide(agreement(), req)
    assert not d.permitted and d.export is not None and d.export["recipientRegion"] is None


@pytest.mark.parametrize("level", ["core", "核心"])
def test_core_data_never_leaves_the_node(level: str) -> None:
    assert not decide(agreement("CAC-1"), request(level, "CN")).permitted
    compute = CN + "federatedCompute"
    ok = decide(agreement(action=compute), request(level, "CN", action=compute))
    assert ok.permitted
    # "use" covers federated computation (it is a use), and the computation stays on the node
    assert decide(agreement(), request(level, "DE", action=compute)).permitted


def test_missing_classification_denies() -> None:
    req = request("general")
    req["asset"] = {}
    assert not decide(agreement(), req).permitted
    req["asset"] = {"classification": "secret"}
    assert not decide(agreement(), req).permitted


def test_validate_core_policy_allows_only_federated_compute() -> None:
    assert validate_policy(agreement(), "cn-auto", classification="core")
    assert (
        validate_policy(agreement(action=CN + "federatedCompute"), "cn-auto", classification="core")
        == []
    )
