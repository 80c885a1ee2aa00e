"""UsageStore.release: a counted use given back (the data plane delivered nothing)."""

from __future__ import annotations

import threading
from datetime import timedelta

from policies.usage import UsageStore
from tests.policies.test_usage import REQUEST, SIGNED, Clock, agreement, count_limit

TARGET = "urn:asset:x"


def test_release_gives_back_one_use_and_never_goes_below_zero(engine) -> None:
    store = UsageStore(engine, clock=Clock(SIGNED + timedelta(days=1)))
    store.register_agreement("agr-r1", agreement(count_limit(1)), REQUEST, signed_at=SIGNED)
    assert store.release("agr-r1", TARGET) is False  # nothing counted yet
    assert store.use("agr-r1", REQUEST).permitted
    assert not store.use("agr-r1", REQUEST).permitted
    assert store.release("agr-r1", TARGET) is True
    assert store.uses("agr-r1", TARGET) == 0
    assert store.release("agr-r1", TARGET) is False
    assert store.uses("agr-r1", TARGET) == 0
    # the counter row exists at 0: the next use advances it (no insert conflict)
    assert store.use("agr-r1", REQUEST).permitted
    assert store.uses("agr-r1", TARGET) == 1
    assert not store.use("agr-r1", REQUEST).permitted


def test_release_inside_a_callers_transaction_rolls_back_with_it(engine) -> None:
    store = UsageStore(engine, clock=Clock(SIGNED + timedelta(days=1)))
    store.register_agreement("agr-r2", agreement(count_limit(2)), REQUEST, signed_at=SIGNED)
    assert store.use("agr-r2", REQUEST).permitted
    try:
        with engine.begin() as conn:
            assert store.release("agr-r2", TARGET, conn=conn) is True
            raise RuntimeError("the record of the release failed")
    except RuntimeError:
        pass
    assert store.uses("agr-r2", TARGET) == 1  # not given back without its record


def test_count_stays_exact_with_releases_under_concurrency(engine) -> None:
    """Uses and releases racing: permitted minus released never exceeds the limit."""
    store = UsageStore(engine, clock=Clock(SIGNED + timedelta(days=1)))
    store.register_agreement("agr-r3", agreement(count_limit(6)), REQUEST, signed_at=SIGNED)
    kept, errors = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for i in range(4):
                if store.use("agr-r3", REQUEST).permitted:
                    if (n + i) % 2 and store.release("agr-r3", TARGET):
                        continue  # this use delivered nothing
                    with lock:
                        kept.append(1)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(kept) == store.uses("agr-r3", TARGET) <= 6
