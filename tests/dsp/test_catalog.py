"""Catalog building on the backend under test: visibility, offers, paging, offer ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.dsp.catalog import (
    MAX_PAGE_SIZE,
    CatalogService,
    DatasetNotFoundError,
    offer_id,
    parse_offer_id,
)
from connectors.dsp.catalog_messages import Catalog, Dataset
from connectors.dsp.definitions import (
    Asset,
    Classification,
    ContractDefinition,
    Criterion,
    Operator,
    PolicyDefinition,
)
from connectors.dsp.errors import InvalidMessageError
from connectors.dsp.messages import parse_message
from connectors.dsp.policy import Caller, PolicyDecision
from connectors.dsp.store import ConnectorStore
from tests.dsp.schemas import DSP_DIR, assert_valid

T0 = datetime(2026, 5, 1, tzinfo=UTC)
OEM = Caller("did:web:oem.example", {"tier": "gold"})
SUPPLIER = Caller("did:web:supplier-b.example", {"tier": "basic"})
GOLD_ONLY = {
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [{"leftOperand": "tier", "operator": "eq", "rightOperand": "gold"}],
        }
    ],
}
EVERYONE = {"@type": "Set", "permission": [{"action": "use"}]}
TERMS = {
    "@id": "urn:policy:terms",
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "quality"}],
        }
    ],
}


class CountingChecker:
    """Grants a policy with a ``tier`` constraint when the caller's tier equals it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, policy, *, scope, caller, context) -> PolicyDecision:
        self.calls += 1
        for rule in policy.get("permission", []):
            for c in rule.get("constraint", []):
                if c["leftOperand"] == "tier" and caller.claims.get("tier") != c["rightOperand"]:
                    return PolicyDecision.deny(f"tier {c['rightOperand']} required")
        return PolicyDecision.permit()


@pytest.fixture
def store(migrated_engine) -> ConnectorStore:
    st = ConnectorStore(migrated_engine, clock=lambda: T0)
    with st.transaction() as tx:
        tx.insert_assets(
            [
                Asset(
                    id=f"asset-{i:03d}",
                    properties={
                        "dct:title": f"inspection lot {i}",
                        "kind": "qa" if i < 30 else "forecast",
                    },
                    data_address={"type": "File"},
                    classification=Classification.CORE if i % 10 == 0 else Classification.GENERAL,
                )
                for i in range(40)
            ]
        )
        tx.create_policy(PolicyDefinition("gold", GOLD_ONLY))
        tx.create_policy(PolicyDefinition("everyone", EVERYONE))
        tx.create_policy(PolicyDefinition("terms", TERMS))
        tx.create_contract_definition(
            ContractDefinition(
                "cd-qa", "everyone", "terms", (Criterion("kind", Operator.EQ, "qa"),)
            )
        )
        tx.create_contract_definition(
            ContractDefinition(
                "cd-core-gold", "gold", "terms", (Criterion("classification", Operator.EQ, "core"),)
            )
        )
        tx.create_contract_definition(ContractDefinition("cd-dangling", "everyone", "nope", ()))
    return st


def service(checker=None) -> CatalogService:
    return CatalogService(
        participant_id="did:web:supplier.example",
        protocol_url="https://supplier.example/dsp",
        checker=checker or CountingChecker(),
    )


def test_catalog_shows_only_what_the_access_policy_allows(store) -> None:
    svc = service()
    with store.transaction() as tx:
        oem = svc.request(tx, OEM, limit=100, count=True)
        basic = svc.request(tx, SUPPLIER, limit=100, count=True)
    # qa: assets 0..29 for everyone; core (0,10,20,30) for gold; 30 is core but not qa
    assert oem.total == 31 and basic.total == 30
    ids = {d.id for d in oem.catalog.datasets}
    assert "asset-030" in ids and "asset-030" not in {d.id for d in basic.catalog.datasets}
    by_id = {d.id: d for d in oem.catalog.datasets}
    assert len(by_id["asset-010"].offers) == 2  # matched by both definitions
    assert [o["@id"] for o in by_id["asset-001"].offers] == [offer_id("cd-qa", "asset-001")]
    offer = by_id["asset-001"].offers[0]
    assert offer["permission"] == TERMS["permission"] and "target" not in offer
    assert by_id["asset-001"].properties["dct:title"] == "inspection lot 1"


@pytest.mark.skipif(not DSP_DIR.is_dir(), reason="../shared/spec is not present")
def test_catalog_and_dataset_validate_against_the_official_schemas(store) -> None:
    svc = service()
    with store.transaction() as tx:
        page = svc.request(tx, OEM, limit=5)
        dataset = svc.dataset(tx, OEM, "asset-010")
    doc = page.catalog.to_json()
    assert_valid(doc, "Catalog")
    assert parse_message(doc) == Catalog.from_json(doc)
    assert_valid(dataset.to_json(), "Dataset")
    assert Dataset.from_json(dataset.to_json()) == dataset


def test_paging_forward_and_back_with_tokens(store) -> None:
    svc = service()
    pages = []
    with store.transaction() as tx:
        page = svc.request(tx, OEM, limit=10, count=True)
        assert page.total == 31 and page.prev_token is None
        pages.append(page)
        while page.next_token:
            page = svc.request(tx, OEM, token=page.next_token, limit=10)
            pages.append(page)
        assert [len(p.catalog.datasets) for p in pages] == [10, 10, 10, 1]
        seen = [d.id for p in pages for d in p.catalog.datasets]
        assert len(seen) == 31 == len(set(seen)) and seen == sorted(seen)
        back = [pages[-1]]
        while back[-1].prev_token:
            back.append(svc.request(tx, OEM, token=back[-1].prev_token, limit=10))
        assert [[d.id for d in p.catalog.datasets] for p in reversed(back)] == [
            [d.id for d in p.catalog.datasets] for p in pages
        ]
        assert back[-1].next_token is not None  # the first page again, reached backwards
        by_offset = svc.request(tx, OEM, offset=10, limit=10)
        assert by_offset.catalog.datasets == pages[1].catalog.datasets
        assert by_offset.prev_token is not None
        assert svc.request(tx, OEM, limit=10**9).limit == MAX_PAGE_SIZE
        with pytest.raises(InvalidMessageError):
            svc.request(tx, OEM, offset=-1)
        with pytest.raises(InvalidMessageError):
            svc.request(tx, OEM, token="z.nope")
    links = pages[1].links("https://supplier.example/dsp/catalog/request?x=1&limit=3")
    assert links == [
        f"<https://supplier.example/dsp/catalog/request?x=1&continuationToken={pages[1].next_token}"
        '&limit=10>; rel="next"',
        f"<https://supplier.example/dsp/catalog/request?x=1&continuationToken={pages[1].prev_token}"
        '&limit=10>; rel="prev"',
    ]
    assert pages[-1].links("https://p/c")[0].endswith('rel="prev"')


def test_filter_narrows_the_selection(store) -> None:
    svc = service()
    with store.transaction() as tx:
        page = svc.request(
            tx,
            OEM,
            filters=[
                {
                    "operandLeft": "id",
                    "operator": "in",
                    "operandRight": ["asset-001", "asset-030", "x"],
                }
            ],
        )
        assert [d.id for d in page.catalog.datasets] == ["asset-001", "asset-030"]
        with pytest.raises(InvalidMessageError):
            svc.request(tx, OEM, filters=["free text"])
        with pytest.raises(InvalidMessageError):
            svc.request(
                tx, OEM, filters=[{"operandLeft": "id", "operator": "~", "operandRight": "x"}]
            )


def test_policies_are_evaluated_once_per_request_not_per_asset(store) -> None:
    checker = CountingChecker()
    svc = service(checker)
    with store.transaction() as tx:
        svc.request(tx, OEM, limit=100)
    assert checker.calls == 2  # two distinct access policies, 40 assets


def test_dataset_lookup_is_404_when_hidden_or_unknown(store) -> None:
    svc = service()
    with store.transaction() as tx:
        assert len(svc.dataset(tx, OEM, "asset-030").offers) == 1
        for caller, ds in ((SUPPLIER, "asset-030"), (OEM, "asset-999")):
            with pytest.raises(DatasetNotFoundError) as err:
                svc.dataset(tx, caller, ds)
            assert err.value.status == 404


def test_offer_ids_resolve_back_and_recheck_access(store) -> None:
    svc = service()
    oid = offer_id("cd-core-gold", "asset-030")
    assert parse_offer_id(oid) == ("cd-core-gold", "asset-030")
    assert parse_offer_id("urn:uuid:1") is None and parse_offer_id(f"{oid}:x") is None
    assert parse_offer_id("urn:autospace:offer:!!:??") is None
    with store.transaction() as tx:
        resolved = svc.resolve_offer(tx, oid, OEM)
        assert (
            resolved.dataset_id == "asset-030" and resolved.contract_definition_id == "cd-core-gold"
        )
        assert resolved.policy["permission"] == TERMS["permission"]
        assert svc.resolve_offer(tx, oid, SUPPLIER) is None  # not visible to them
        assert svc.resolve_offer(tx, offer_id("cd-qa", "asset-030"), OEM) is None  # not selected
        assert svc.resolve_offer(tx, offer_id("cd-gone", "asset-001"), OEM) is None


def test_broken_access_checker_hides_everything(store) -> None:
    def broken(policy, **kw):
        raise RuntimeError("engine down")

    with store.transaction() as tx:
        assert service(broken).request(tx, OEM, count=True).total == 0
