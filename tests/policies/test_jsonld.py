"""Offline JSON-LD: our shipped contexts against the specifications, and no network ever."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies import jsonld, parse_policy
from policies.jsonld import JsonLdError, compact, expand, register_context

# Upstream defects in the published W3C ODRL context; ours follows the vocabulary.
W3C_CONTEXT_TYPOS = {"neq": "odrl:neg", "industry": "odrl:industry:"}

OURS_VS_SPEC = [
    ("odrl.jsonld", "w3c-odrl.jsonld"),
    ("dspace-2025-1.jsonld", "dspace-2025-1-context.jsonld"),
    ("odrl-profile.jsonld", "dspace-2025-1-odrl-profile.jsonld"),
    ("odrl-profile.jsonld", "cx-policy-2025-9-odrl.jsonld"),
    ("cx-policy-2025-9.jsonld", "cx-policy-2025-9-context.jsonld"),
]


@pytest.mark.parametrize(("ours", "spec"), OURS_VS_SPEC)
def test_shipped_context_matches_specification(shared_dir: Path, ours: str, spec: str) -> None:
    mine = json.loads((jsonld.CONTEXTS_DIR / ours).read_text())["@context"]
    theirs = json.loads((shared_dir / "spec" / "jsonld" / spec).read_text())["@context"]
    differing = {k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)}
    if spec == "w3c-odrl.jsonld":
        assert differing == set(W3C_CONTEXT_TYPOS)
        for term, typo in W3C_CONTEXT_TYPOS.items():
            assert theirs[term] == typo and mine[term] == f"odrl:{term}"
    else:
        assert differing == set()


def test_cx_contexts_in_catenax_folder_agree(shared_dir: Path) -> None:
    folder = shared_dir / "spec" / "catenax-policy" / "cx-odrl-profile" / "schema" / "context"
    mine = json.loads((jsonld.CONTEXTS_DIR / "cx-policy-2025-9.jsonld").read_text())
    assert json.loads((folder / "context.jsonld").read_text()) == mine


def test_unknown_remote_context_is_named() -> None:
    with pytest.raises(JsonLdError) as info:
        expand({"@context": "https://example.com/ctx.jsonld", "@type": "x"})
    assert info.value.url == "https://example.com/ctx.jsonld"
    assert "https://example.com/ctx.jsonld" in str(info.value)


def test_unknown_nested_context_is_named_through_parse() -> None:
    from policies import PolicyError

    doc = {
        "@context": [jsonld.ODRL_CONTEXT_URL, "https://evil.example/ctx"],
        "@type": "Set",
        "permission": [{"action": "use"}],
    }
    with pytest.raises(PolicyError, match=r"https://evil\.example/ctx"):
        parse_policy(doc)


def test_relative_ids_are_not_rebased() -> None:
    doc = {
        "@context": jsonld.ODRL_CONTEXT_URL,
        "@id": "policy-1",
        "@type": "Set",
        "permission": [{"target": "asset-7", "action": "use", "assignee": "../party"}],
    }
    out = expand(doc)
    assert out[0]["@id"] == "policy-1"
    perm = out[0]["http://www.w3.org/ns/odrl/2/permission"][0]
    assert perm["http://www.w3.org/ns/odrl/2/target"] == [{"@id": "asset-7"}]
    assert "example.org" not in json.dumps(out)
    back = compact(out, jsonld.ODRL_CONTEXT_URL)
    assert back["uid"] == "policy-1"


def test_register_context_used_offline() -> None:
    url = "https://w3id.org/edc/test-management-context.jsonld"
    register_context(
        url, {"@context": {"edc": "https://w3id.org/edc/v0.0.1/ns/", "name": "edc:name"}}
    )
    out = expand({"@context": url, "name": "x"})
    assert out == [{"https://w3id.org/edc/v0.0.1/ns/name": [{"@value": "x"}]}]
    register_context(url, {"name": "https://example.com/other"})  # replaced, not stale
    assert expand({"@context": url, "name": "x"}) == [
        {"https://example.com/other": [{"@value": "x"}]}
    ]


def test_register_context_rejects_non_objects() -> None:
    with pytest.raises(JsonLdError):
        register_context("https://x.example/c", ["not", "a", "context"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "contract-offer-message.json",
        "contract-request-message.json",
        "contract-agreement-message.json",
    ],
)
def test_dsp_messages_expand_and_yield_their_policy(shared_dir: Path, name: str) -> None:
    doc = json.loads(
        (shared_dir / "spec" / "dsp-2025-1" / "negotiation" / "example" / name).read_text()
    )
    assert expand(doc)
    policy = parse_policy(doc)
    assert policy.permissions and policy.type in ("Offer", "Agreement")


def test_same_policy_in_every_form_parses_alike() -> None:
    from policies import normalize

    compact_w3c = {
        "@context": jsonld.ODRL_CONTEXT_URL,
        "@type": "Offer",
        "uid": "urn:p:1",
        "assigner": "urn:party:a",
        "permission": [
            {
                "target": "urn:asset:1",
                "action": "read",
                "constraint": [
                    {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
                ],
            }
        ],
    }
    vocab_form = {
        "@context": {"@vocab": "http://www.w3.org/ns/odrl/2/"},
        "@type": "Offer",
        "@id": "urn:p:1",
        "assigner": {"@id": "urn:party:a"},
        "permission": [
            {
                "target": {"@id": "urn:asset:1"},
                "action": {"@id": "http://www.w3.org/ns/odrl/2/read"},
                "constraint": [
                    {
                        "leftOperand": {"@id": "http://www.w3.org/ns/odrl/2/purpose"},
                        "operator": {"@id": "http://www.w3.org/ns/odrl/2/eq"},
                        "rightOperand": "research",
                    }
                ],
            }
        ],
    }
    dsp_form = {
        "@context": [jsonld.DSP_CONTEXT_URL],
        "@type": "ContractRequestMessage",
        "consumerPid": "urn:c:1",
        "offer": {
            "@type": "Offer",
            "@id": "urn:p:1",
            "assigner": "urn:party:a",
            "target": "urn:asset:1",
            "permission": [
                {
                    "action": "read",
                    "constraint": [
                        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
                    ],
                }
            ],
        },
    }
    forms = [compact_w3c, vocab_form, expand(compact_w3c), dsp_form]
    normal = [normalize(parse_policy(f)) for f in forms]
    # DSP's ODRL profile context has no "read" or "purpose" term: the bare names are
    # resolved to the ODRL vocabulary, so all four forms mean the same policy.
    assert normal[0] == normal[1] == normal[2] == normal[3]


def test_policy_nested_in_an_edc_policy_definition() -> None:
    edc = {
        "@context": {
            "@vocab": "https://w3id.org/edc/v0.0.1/ns/",
            "odrl": "http://www.w3.org/ns/odrl/2/",
        },
        "@id": "definition-1",
        "policy": {
            "@type": "odrl:Set",
            "odrl:permission": [
                {
                    "odrl:action": {"@id": "odrl:use"},
                    "odrl:constraint": {
                        "odrl:leftOperand": {"@id": "odrl:purpose"},
                        "odrl:operator": {"@id": "odrl:eq"},
                        "odrl:rightOperand": "research",
                    },
                }
            ],
        },
    }
    policy = parse_policy(edc)
    assert policy.type == "Set" and policy.uid is None
    assert policy.permissions[0].constraints[0].left == "http://www.w3.org/ns/odrl/2/purpose"
