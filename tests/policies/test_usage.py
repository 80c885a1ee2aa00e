"""Stateful usage control in the database: exact counters under concurrency, duties,
export log, monitor. Runs on SQLite and PostgreSQL (AUTOSPACE_TEST_DB)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from policies.jsonld import ODRL_CONTEXT_URL
from policies.tables import metadata
from policies.usage import UsageError, UsageStore
from policies.vocab import AUTOSPACE, CN

SIGNED = datetime(2025, 6, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def agreement(*constraints, duties=None, uid="urn:agr:1", **extra) -> dict:
    perm = {
        "uid": "urn:rule:1",
        "target": "urn:asset:x",
        "action": "use",
        "assignee": "urn:party:c",
        "assigner": "urn:party:p",
    }
    if constraints:
        perm["constraint"] = list(constraints)
    if duties:
        perm["duty"] = duties
    return {
        "@context": [ODRL_CONTEXT_URL, {"cn": CN}],
        "@type": "Agreement",
        "uid": uid,
        "permission": [perm],
        **extra,
    }


REQUEST = {"assignee": "urn:party:c", "action": "read", "target": "urn:asset:x"}


def count_limit(n: int) -> dict:
    return {
        "leftOperand": "count",
        "operator": "lteq",
        "rightOperand": {"@value": str(n), "@type": "xsd:integer"},
    }


def test_migrations_create_the_tables(migrated_engine) -> None:
    present = set(inspect(migrated_engine).get_table_names())
    assert set(metadata.tables) <= present


def test_count_limit_is_exact_under_concurrent_use(engine) -> None:
    store = UsageStore(engine, clock=Clock(SIGNED + timedelta(days=1)))
    store.register_agreement("agr-1", agreement(count_limit(10)), REQUEST, signed_at=SIGNED)
    permitted = []
    errors = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                if store.use("agr-1", REQUEST).permitted:
                    permitted.append(1)
        except Exception as exc:  # the test must see any escape
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(permitted) == 10
    assert store.uses("agr-1", "urn:asset:x") == 10
    assert not store.use("agr-1", REQUEST).permitted


def test_denied_uses_are_not_counted(engine) -> None:
    store = UsageStore(engine, clock=Clock(SIGNED))
    store.register_agreement("agr-2", agreement(count_limit(1)), REQUEST, signed_at=SIGNED)
    assert not store.use("agr-2", dict(REQUEST, assignee="urn:party:other")).permitted
    assert store.uses("agr-2", "urn:asset:x") == 0
    assert store.use("agr-2", REQUEST).permitted
    assert store.uses("agr-2", "urn:asset:x") == 1


def test_time_window_after_agreement_and_monitor(engine) -> None:
    clock = Clock(SIGNED + timedelta(days=5))
    store = UsageStore(engine, clock=clock)
    window = {
        "leftOperand": "elapsedTime",
        "operator": "lteq",
        "rightOperand": {"@value": "P30D", "@type": "xsd:duration"},
    }
    store.register_agreement("agr-3", agreement(window), REQUEST, signed_at=SIGNED)
    store.register_agreement("agr-4", agreement(uid="urn:agr:4"), REQUEST, signed_at=SIGNED)
    assert store.use("agr-3", REQUEST).permitted
    assert store.monitor() == []
    clock.now = SIGNED + timedelta(days=31)
    assert not store.use("agr-3", REQUEST).permitted
    lapsed = store.monitor(mark=True)
    assert [x["agreement"] for x in lapsed] == ["agr-3"]
    denied = store.use("agr-3", REQUEST)
    assert not denied.permitted and "lapsed" in denied.reason
    assert store.monitor() == []  # marked, no longer live


def test_duties_inform_delete_log(engine) -> None:
    events = []
    clock = Clock(SIGNED + timedelta(days=1))
    store = UsageStore(engine, clock=clock, on_event=events.append)
    duties = [
        {"uid": "urn:duty:inform", "action": "inform"},
        {
            "uid": "urn:duty:delete",
            "action": "delete",
            "constraint": [
                {
                    "leftOperand": "elapsedTime",
                    "operator": "lteq",
                    "rightOperand": {"@value": "P10D", "@type": "xsd:duration"},
                }
            ],
        },
        {"uid": "urn:duty:log", "action": AUTOSPACE + "log"},
    ]
    store.register_agreement("agr-5", agreement(duties=duties), REQUEST, signed_at=SIGNED)
    d = store.use("agr-5", REQUEST)
    assert d.permitted
    assert {o["duty"] for o in d.obligations} == {
        "urn:duty:inform",
        "urn:duty:delete",
        "urn:duty:log",
    }
    assert (
        len(events) == 1 and events[0]["agreement"] == "agr-5" and events[0]["type"] == "policy.use"
    )
    pending = {p["duty_id"]: p for p in store.pending_duties("agr-5")}
    assert pending["urn:duty:delete"]["deadline"] is not None
    with pytest.raises(UsageError, match="attestation"):
        store.set_duty("agr-5", "urn:duty:delete", "fulfilled")
    clock.now = SIGNED + timedelta(days=12)  # deletion overdue
    lapsed = store.monitor()
    assert lapsed and "urn:duty:delete" in lapsed[0]["reason"]
    assert not store.use("agr-5", REQUEST).permitted
    store.set_duty(
        "agr-5", "urn:duty:delete", "fulfilled", attestation="wiped by job 7, sha256:ab12"
    )
    assert store.use("agr-5", REQUEST).permitted
    assert store.monitor() == []


def test_cross_border_decisions_are_logged(engine) -> None:
    store = UsageStore(engine, clock=Clock(SIGNED))
    store.register_agreement("agr-6", agreement(), REQUEST, signed_at=SIGNED, profile="cn-auto")
    request = dict(
        REQUEST, claims={"region": "DE"}, asset={"classification": "important", "homeRegion": "CN"}
    )
    assert not store.use("agr-6", request).permitted
    store.register_agreement(
        "agr-7",
        agreement(uid="urn:agr:7", **{"cn:exportApproval": "CAC-7"}),
        REQUEST,
        signed_at=SIGNED,
        profile="cn-auto",
    )
    assert store.use("agr-7", request).permitted
    same_region = dict(request, claims={"region": "CN"})
    assert store.use("agr-7", same_region).permitted
    log = store.export_log()
    assert [(r["agreement_id"], r["permitted"], r["approval"]) for r in log] == [
        ("agr-6", False, None),
        ("agr-7", True, "CAC-7"),
    ]


def test_unknown_agreement_is_a_denial(engine) -> None:
    d = UsageStore(engine).use("nope", REQUEST)
    assert not d.permitted and "unknown agreement" in d.reason
