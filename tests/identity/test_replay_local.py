"""The host-local replay store (LMDB): one decision per id across processes, and honest
about what a host crash may have erased.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.identity import replay_local
from connectors.identity.errors import PeerAuthError, Reason
from connectors.identity.replay_local import LocalReplayStore, host_boot, replay_key
from node.config import ConfigError, NodeConfig
from node.context import replay_store
from node.db import make_engine
from tests.identity.conftest import Clock
from tests.identity.test_replay_store import ISSUER, JTIS, _race, race_in_processes


def boot(boot_id: str, boot_time: float = 0.0) -> Any:
    return lambda: (boot_id, boot_time)


def test_first_use_is_accepted_and_a_second_refused(tmp_path: Path) -> None:
    store = LocalReplayStore(tmp_path / "r", clock=Clock())
    exp = int(Clock().now) + 300
    assert store.remember(ISSUER, "j", exp)
    assert not store.remember(ISSUER, "j", exp)
    assert store.remember("did:web:other.example", "j", exp)  # ids are per issuer
    assert store.horizon == 0.0  # a new store has forgotten nothing
    store.close()
    reopened = LocalReplayStore(tmp_path / "r", clock=Clock())
    assert not reopened.remember(ISSUER, "j", exp)  # kept on disk, not only in memory
    reopened.close()


def test_keys_are_fixed_size_and_sorted_by_expiry() -> None:
    long_did = "did:web:" + "x" * 2000  # longer than LMDB's key limit, still one key
    assert len(replay_key(long_did, "j", 5)) == len(replay_key(ISSUER, "j", 5)) == 24
    assert replay_key(ISSUER, "j", 5) < replay_key(ISSUER, "j", 6)
    assert replay_key(ISSUER, "a\0b", 5) != replay_key(ISSUER + "\0a", "b", 5)
    assert replay_key(ISSUER, "j", -3) == replay_key(ISSUER, "j", 0)  # clamped, no error


def test_threads_sharing_one_store_accept_each_jti_exactly_once(tmp_path: Path) -> None:
    store = LocalReplayStore(tmp_path / "r", clock=lambda: 0.0)
    assert sorted(_race(store, JTIS, threads=8)) == sorted(JTIS)  # type: ignore[arg-type]
    store.close()


def _worker_process(path: str, start: Any, out: Any) -> None:
    """A gunicorn-worker stand-in: its own handle on the shared directory."""
    store = LocalReplayStore(Path(path), clock=lambda: 0.0)
    start.wait(30)
    try:
        out.put(_race(store, JTIS, threads=4))  # type: ignore[arg-type]
    except Exception as exc:  # report instead of hanging the parent on the queue
        out.put(repr(exc))
    finally:
        store.close()


def test_processes_sharing_the_directory_accept_each_jti_exactly_once(tmp_path: Path) -> None:
    path = str(tmp_path / "r")
    won = race_in_processes(_worker_process, path)
    assert sorted(won) == sorted(JTIS)  # each id accepted once, by exactly one process
    store = LocalReplayStore(Path(path), clock=lambda: 0.0)
    assert not any(store.remember(ISSUER, jti, 10**10) for jti in JTIS)
    store.close()


def test_purge_deletes_only_expired_ids_in_batches(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_local, "PURGE_BATCH", 7)
    clock = Clock(1000.0)
    store = LocalReplayStore(tmp_path / "r", clock=clock)
    for i in range(30):
        assert store.remember(ISSUER, f"old-{i}", 1100)
    for i in range(5):
        assert store.remember(ISSUER, f"new-{i}", 1200)
    assert store.purge(now=1100) == 0  # an id is kept until its expiry has passed
    assert store.purge(now=1150) == 30  # five batches of at most 7
    assert store.remember(ISSUER, "old-0", 1100)  # forgotten, as the token is expired anyway
    assert not store.remember(ISSUER, "new-0", 1200)
    assert store.purge(now=10**6) == 6  # up to the last id, then stops
    assert store.purge(now=10**6) == 0
    store.close()


def test_a_store_written_before_a_host_restart_starts_empty_with_a_horizon(
        tmp_path: Path) -> None:
    path = tmp_path / "r"
    before = LocalReplayStore(path, clock=Clock(), boot=boot("boot-1", 1_000.0))
    assert before.remember(ISSUER, "j", 10**10)
    before.close()
    after = LocalReplayStore(path, clock=Clock(), boot=boot("boot-2", 1_800_000_500.0))
    # the crash came before the new boot: every token it may have forgotten was issued
    # before then, and those are the ones the verifier must refuse
    assert after.horizon == 1_800_000_500.0
    assert after.remember(ISSUER, "j", 10**10)  # the old file was discarded, not trusted
    after.close()
    state = json.loads((path / "host.json").read_text())
    assert state == {"boot_id": "boot-2", "horizon": 1_800_000_500.0}
    # later processes of the same boot keep both the ids and the horizon
    again = LocalReplayStore(path, clock=Clock(), boot=boot("boot-2", 1_800_000_500.0))
    assert again.horizon == 1_800_000_500.0
    assert not again.remember(ISSUER, "j", 10**10)
    again.close()


def test_contents_without_a_boot_record_are_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "r"
    store = LocalReplayStore(path, clock=Clock(), boot=boot("boot-1"))
    assert store.remember(ISSUER, "j", 10**10)
    store.close()
    (path / "host.json").unlink()
    clock = Clock(1_800_000_900.0)
    reopened = LocalReplayStore(path, clock=clock, boot=boot("boot-1"))
    assert reopened.horizon == clock.now  # when it was lost is unknown: refuse until now
    reopened.close()


def test_verifier_refuses_tokens_issued_before_the_horizon(world: Any, tmp_path: Path) -> None:
    path = tmp_path / "horizon"
    LocalReplayStore(path, clock=world.clock, boot=boot("boot-1")).remember(ISSUER, "x", 1)
    store = LocalReplayStore(path, clock=world.clock, boot=boot("boot-2", world.clock.now))
    world.verifier._replay = store
    old = world.a.token(world.b.did, world.clock.now - 10)
    with pytest.raises(PeerAuthError) as refused:
        world.verifier.verify(old)
    assert refused.value.reason is Reason.REPLAY_UNDECIDABLE and refused.value.status == 503
    # a token issued within the clock skew after the horizon may also predate the crash
    world.clock.advance(60)
    with pytest.raises(PeerAuthError):
        world.verifier.verify(world.a.token(world.b.did, world.clock.now - 45))
    fresh = world.a.token(world.b.did, world.clock.now)
    assert world.verifier.verify(fresh).caller_did == world.a.did
    with pytest.raises(PeerAuthError) as replayed:
        world.verifier.verify(fresh)
    assert replayed.value.reason is Reason.REPLAYED
    store.close()


def test_a_full_store_refuses_as_undecidable_and_keeps_what_it_has(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_local, "MAP_SIZE", 256 * 1024)
    store = LocalReplayStore(tmp_path / "r", clock=lambda: 0.0)
    accepted = 0
    with pytest.raises(PeerAuthError) as full:
        for i in range(100_000):
            assert store.remember(ISSUER, f"j{i}", 10**10)
            accepted += 1
    assert full.value.reason is Reason.REPLAY_UNDECIDABLE and full.value.status == 503
    assert accepted > 1000
    assert not store.remember(ISSUER, "j0", 10**10)  # still refuses what it recorded
    store.close()


def test_unopenable_directory_fails_closed(tmp_path: Path) -> None:
    blocker = tmp_path / "r"
    blocker.write_text("not a directory")
    store = LocalReplayStore(blocker, clock=lambda: 0.0)
    with pytest.raises(PeerAuthError) as refused:
        store.remember(ISSUER, "j", 100)
    assert refused.value.reason is Reason.REPLAY_UNDECIDABLE


def test_host_boot_reads_this_linux_host() -> None:
    boot_id, boot_time = host_boot()
    assert len(boot_id) == 36 and boot_id.count("-") == 4
    assert 0 < boot_time < 4_000_000_000


def test_node_keeps_ids_locally_for_sqlite_and_in_the_database_otherwise(tmp_path: Path) -> None:
    def config(kind: str) -> NodeConfig:
        return NodeConfig.from_dict(tmp_path, {
            "participant_id": "BPNL000000000001", "name": "n", "public_url": "http://127.0.0.1:1",
            "trust": {"replay_store": kind}}, {})

    sqlite = make_engine(f"sqlite:///{tmp_path / 'node.sqlite'}")
    memory = make_engine("sqlite://")
    try:
        local = replay_store(config("auto"), sqlite, Clock())
        assert isinstance(local, LocalReplayStore)
        assert local.path == tmp_path / "node.sqlite-replay"
        assert type(replay_store(config("database"), sqlite, Clock())).__name__ == "SqlReplayStore"
        assert type(replay_store(config("auto"), memory, Clock())).__name__ == "SqlReplayStore"
        forced = replay_store(config("local"), memory, Clock())
        assert isinstance(forced, LocalReplayStore) and forced.path == tmp_path / "replay"
    finally:
        sqlite.dispose()
        memory.dispose()
    with pytest.raises(ConfigError, match=r"trust\.replay_store"):
        config("redis")
