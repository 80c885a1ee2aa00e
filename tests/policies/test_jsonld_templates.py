"""Templated JSON-LD (policies.jsonld_templates) gives exactly what pyld gives."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from policies import jsonld
from policies.jsonld_templates import TemplateCache, compact, expand

EDC = {"@vocab": "https://w3id.org/edc/v0.0.1/ns/", "odrl": "http://www.w3.org/ns/odrl/2/"}
ODRL_URL = "http://www.w3.org/ns/odrl.jsonld"
CONTEXTS = [jsonld.DSP_CONTEXT_URL, [jsonld.DSP_ODRL_PROFILE_URL],
            {"@vocab": "https://w3id.org/edc/v0.0.1/ns/", "odrl": "http://www.w3.org/ns/odrl/2/",
             "dcat": "http://www.w3.org/ns/dcat#"}]
ODD_VALUES = ["use", "odrl:use", "urn:x:1", "did:web:a", "http://e.example/a", "a b", "@x",
              "_:b1", "x", "eq", "target", "", "odrl", "https://w3id.org/edc/v0.0.1/ns/y"]


def contract_request(i: int, **over: object) -> dict:
    policy = {"@context": ODRL_URL, "@id": f"urn:autospace:offer:Y2Q:{i}", "@type": "Offer",
              "assigner": "BPN-provider", "target": f"asset-{i}",
              "permission": [{"action": "use", "constraint": [
                  {"leftOperand": "purpose", "operator": "eq", "rightOperand": f"p{i}"}]}]}
    return {"@context": EDC, "@type": "ContractRequest",
            "counterPartyAddress": "http://127.0.0.1:8181/protocol",
            "counterPartyId": f"BPN-{i}", "protocol": "dataspace-protocol-http:2025-1",
            "policy": policy, **over}


def outcome(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return "ok", fn(*args)
    except jsonld.JsonLdError as exc:  # (pyld's details name processed contexts by uuid)
        return "error", str(exc).split("Details:")[0]


def vary(doc, rnd: random.Random):  # type: ignore[no-untyped-def]
    """The same shape with other strings (some plain, some a processor would rewrite)."""
    if isinstance(doc, dict):
        return {k: v if k in ("@context", "@type") else vary(v, rnd) for k, v in doc.items()}
    if isinstance(doc, list):
        return [vary(v, rnd) for v in doc]
    if isinstance(doc, str):
        r = rnd.random()
        if r < 0.3:
            return doc
        if r < 0.6:
            return re.sub(r"[0-9a-z]$", "q", doc) + str(rnd.randint(0, 9))
        if r < 0.7:
            return rnd.choice(ODD_VALUES)
        return f"v{rnd.randint(0, 99)}"
    return doc


def spec_examples(shared_dir: Path) -> list[dict]:
    found = []
    for path in sorted((shared_dir / "spec").rglob("*.json*")):
        if "schema" in path.name:
            continue
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(doc, dict) and "@context" in doc:
            found.append(doc)
    return found


def test_specification_examples_expand_and_compact_as_pyld_does(shared_dir: Path) -> None:
    docs = spec_examples(shared_dir)
    if not docs:
        pytest.skip("no specification examples in ../shared")
    rnd = random.Random(7)
    for rep in range(3):
        for doc in docs:
            doc = vary(doc, rnd) if rep else doc
            want = outcome(jsonld.expand, doc)
            assert outcome(expand, doc) == want
            if want[0] == "ok":
                for ctx in CONTEXTS:
                    assert outcome(compact, want[1], ctx) == outcome(jsonld.compact, want[1], ctx)


def test_one_shape_is_processed_once_and_bound_per_document() -> None:
    cache = TemplateCache(jsonld.expand, expanded_input=False, expanded_output=True)
    for i in range(20):
        doc = contract_request(i)
        assert cache(doc) == jsonld.expand(doc)
    assert cache.misses == 1 and cache.hits == 19


@pytest.mark.parametrize("value", ODD_VALUES)
def test_values_a_processor_rewrites_are_never_substituted(value: str) -> None:
    cache = TemplateCache(jsonld.expand, expanded_input=False, expanded_output=True)
    cache(contract_request(0))
    for doc in (contract_request(1, counterPartyId=value),
                {**contract_request(2), "policy": {**contract_request(2)["policy"],
                                                   "target": value, "@id": value}}):
        assert outcome(cache, doc) == outcome(jsonld.expand, doc)


def test_contexts_that_rewrite_values_keep_them_literal() -> None:
    cache = TemplateCache(jsonld.expand, expanded_input=False, expanded_output=True)
    shapes = [
        # a type alias: its value is a type (vocabulary-relative), never substituted
        lambda v: {"@context": {"@vocab": "https://v.example/", "kind": "@type"},
                   "kind": v, "name": v},
        # a vocabulary-typed term with @vocab, and @base for ids
        lambda v: {"@context": {"@vocab": "https://v.example/", "@base": "https://b.example/",
                                "ref": {"@type": "@vocab"}, "link": {"@type": "@id"}},
                   "@id": v, "ref": v, "link": v, "name": v},
        # an id map: values become keys of the compacted / expanded form
        lambda v: {"@context": {"@vocab": "https://v.example/",
                                "byId": {"@container": "@id"}},
                   "byId": {v: {"name": v}}},
    ]
    for shape in shapes:
        for v in ("one", "two", "three"):
            doc = shape(v)
            assert cache(doc) == jsonld.expand(doc)


def test_compaction_of_expanded_offers() -> None:
    for i in range(5):
        expanded = jsonld.expand(contract_request(i))
        for ctx in CONTEXTS:
            assert outcome(compact, expanded, ctx) == outcome(jsonld.compact, expanded, ctx)


def test_input_holding_the_placeholder_text_is_processed_whole() -> None:
    cache = TemplateCache(jsonld.expand, expanded_input=False, expanded_output=True)
    doc = contract_request(1, counterPartyId="autospace-ph-0-c1d7e3a5")
    assert cache(doc) == jsonld.expand(doc)
    assert cache.hits == cache.misses == 0


def test_errors_are_pyld_errors() -> None:
    bad = {"@context": "https://unknown.example/ctx", "name": "x"}
    with pytest.raises(jsonld.JsonLdError, match=r"unknown\.example"):
        expand(bad)
