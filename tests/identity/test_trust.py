"""The peer verifier end to end in-process: every check, with a real database replay store."""

import pytest

from connectors.identity import credentials, tokens
from connectors.identity.errors import PeerAuthError, Reason
from connectors.identity.signer import EphemeralSigner
from connectors.identity.trust import AnchorKeys, RegistryCache, TrustAnchor


def refused(world, token):
    with pytest.raises(PeerAuthError) as e:
        world.verifier.verify(token)
    return e.value


def test_valid_call_yields_typed_claims(world):
    claims = world.verifier.verify(world.a.token(world.b.did, world.clock()))
    assert claims.caller_did == world.a.did
    assert claims.role is credentials.Role.OEM
    assert claims.participant_id == "P-a"
    assert claims.audience == world.b.did
    assert claims.credential_issuer == world.authority.did


def test_missing_token(world):
    assert refused(world, None).reason is Reason.MISSING_TOKEN
    assert refused(world, "").status == 401


def test_bad_signature(world):
    token = world.a.token(world.b.did, world.clock())
    head, body, sig = token.split(".")
    tampered = f"{head}.{body}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    e = refused(world, tampered)
    assert (e.reason, e.status, e.caller) == (Reason.BAD_SIGNATURE, 401, world.a.did)


def test_token_signed_by_a_key_the_caller_does_not_have(world):
    forged = tokens.issue(EphemeralSigner(), issuer=world.a.did, audience=world.b.did,
                          credential=world.a.credential, now=world.clock())
    e = refused(world, forged)
    assert (e.reason, e.status) == (Reason.UNKNOWN_KEY, 401)


def test_wrong_audience(world):
    e = refused(world, world.a.token("did:web:c.example", world.clock()))
    assert (e.reason, e.status) == (Reason.WRONG_AUDIENCE, 401)


def test_expired_and_future_tokens(world):
    assert refused(world, world.a.token(world.b.did, world.clock() - 200, lifetime=60)).reason \
        is Reason.EXPIRED
    assert refused(world, world.a.token(world.b.did, world.clock() + 100)).reason \
        is Reason.NOT_YET_VALID


def test_replay_is_refused_even_across_verifier_instances(world):
    token = world.a.token(world.b.did, world.clock())
    world.verifier.verify(token)
    assert refused(world, token).reason is Reason.REPLAYED


def test_replay_store_purges_only_expired(world):
    assert world.replay.remember("did:x", "j1", int(world.clock()) + 10)
    assert world.replay.remember("did:x", "j2", int(world.clock()) - 10)
    assert not world.replay.remember("did:x", "j1", int(world.clock()) + 10)
    assert world.replay.purge() == 1
    assert not world.replay.remember("did:x", "j1", int(world.clock()) + 10)
    assert world.replay.remember("did:x", "j2", int(world.clock()) + 10)


def test_credential_of_another_member_is_refused(world):
    token = world.a.token(world.b.did, world.clock(), credential=world.b.credential)
    assert refused(world, token).reason is Reason.SUBJECT_MISMATCH


def test_untrusted_authority(world):
    rogue = EphemeralSigner()
    cred = credentials.issue(rogue, issuer="did:web:rogue.example", subject=world.a.did,
                             participant_id="P-a", name="A", role="oem", region="CN",
                             valid_from=int(world.clock()), valid_until=int(world.clock()) + 999)
    e = refused(world, world.a.token(world.b.did, world.clock(), credential=cred))
    assert (e.reason, e.status) == (Reason.UNTRUSTED_ISSUER, 403)


def test_forged_credential_claiming_the_trusted_authority(world):
    cred = credentials.issue(EphemeralSigner(), issuer=world.authority.did, subject=world.a.did,
                             participant_id="P-a", name="A", role="oem", region="CN",
                             valid_from=int(world.clock()), valid_until=int(world.clock()) + 999)
    e = refused(world, world.a.token(world.b.did, world.clock(), credential=cred))
    assert e.reason is Reason.CREDENTIAL_BAD_SIGNATURE


def test_expired_credential(world):
    world.clock.advance(31 * 86400)
    e = refused(world, world.a.token(world.b.did, world.clock()))
    assert (e.reason, e.status) == (Reason.CREDENTIAL_EXPIRED, 403)


def test_revocation_is_seen_after_the_refresh_interval(world):
    world.verifier.verify(world.a.token(world.b.did, world.clock()))
    world.authority.revoke(world.a.did)
    world.verifier.verify(world.a.token(world.b.did, world.clock()))  # cached registry
    world.clock.advance(10)
    e = refused(world, world.a.token(world.b.did, world.clock()))
    assert (e.reason, e.status) == (Reason.REVOKED, 403)


def _wait_for_fetches(world, n: int) -> None:
    import time

    deadline = time.monotonic() + 5
    while world.source.fetches < n and time.monotonic() < deadline:
        time.sleep(0.005)
    assert world.source.fetches == n
    world.verifier._registries._lock.acquire(timeout=5)  # the refresh thread is done
    world.verifier._registries._lock.release()


def test_registry_is_refreshed_ahead_without_making_the_caller_wait(world):
    world.verifier.verify(world.a.token(world.b.did, world.clock()))
    world.authority.revoke(world.a.did)
    world.clock.advance(4)
    world.verifier.verify(world.a.token(world.b.did, world.clock()))  # too early: no fetch
    assert world.source.fetches == 1
    world.clock.advance(2)  # past half the interval: answered from the cache, fetch behind
    world.verifier.verify(world.a.token(world.b.did, world.clock()))
    _wait_for_fetches(world, 2)
    # the revocation is seen before the interval of the first fetch has run out
    e = refused(world, world.a.token(world.b.did, world.clock()))
    assert (e.reason, e.status) == (Reason.REVOKED, 403)
    assert world.source.fetches == 2


def test_failed_refresh_ahead_keeps_the_document_and_retries_in_the_caller(world):
    world.verifier.verify(world.a.token(world.b.did, world.clock()))
    world.source.fail = True
    world.clock.advance(6)
    world.verifier.verify(world.a.token(world.b.did, world.clock()))
    _wait_for_fetches(world, 2)
    world.verifier.verify(world.a.token(world.b.did, world.clock()))  # no retry at once
    assert world.source.fetches == 2
    world.source.fail = False
    world.authority.revoke(world.a.did)
    world.clock.advance(4)  # the first fetch is now a whole interval old: fetched in-line
    e = refused(world, world.a.token(world.b.did, world.clock()))
    assert e.reason is Reason.REVOKED
    assert world.source.fetches == 3


def test_superseded_credential_is_revoked_on_readmission(world):
    old = world.a.credential
    world.a.credential, _ = world.authority.admit(member_did=world.a.did, participant_id="P-a",
                                                  role="oem")
    world.clock.advance(10)
    assert refused(world, world.a.token(world.b.did, world.clock(), credential=old)).reason \
        is Reason.REVOKED
    world.verifier.verify(world.a.token(world.b.did, world.clock()))


def test_credential_for_a_non_member(world):
    c = world.add_member("https://c.example", admit=False)
    c.credential = credentials.issue(world.authority_signer, issuer=world.authority.did,
                                     subject=c.did, participant_id="P-c", name="C",
                                     role="supplier", region="CN",
                                     valid_from=int(world.clock()),
                                     valid_until=int(world.clock()) + 999)
    assert refused(world, c.token(world.b.did, world.clock())).reason is Reason.NOT_A_MEMBER


def test_unresolvable_caller(world):
    c = world.add_member("https://c.example")
    del world.documents[c.did]
    world.clock.advance(10)  # refresh the registry that now lists c
    assert refused(world, c.token(world.b.did, world.clock())).reason \
        is Reason.CALLER_UNRESOLVABLE


def test_registry_outage_uses_the_last_document_until_it_expires(world):
    world.verifier.verify(world.a.token(world.b.did, world.clock()))
    world.source.fail = True
    world.clock.advance(11)
    world.verifier.verify(world.a.token(world.b.did, world.clock()))  # stale but unexpired
    world.clock.advance(600)
    e = refused(world, world.a.token(world.b.did, world.clock()))
    assert (e.reason, e.status) == (Reason.REGISTRY_UNAVAILABLE, 503)


def test_no_registry_ever_fetched_fails_closed(world):
    world.source.fail = True
    fresh = RegistryCache(AnchorKeys([TrustAnchor(world.authority.did)],
                                     world.verifier._resolver),
                          world.source, clock=world.clock, refresh_interval=10)
    with pytest.raises(PeerAuthError) as e:
        fresh.get(world.authority.did)
    assert e.value.reason is Reason.REGISTRY_UNAVAILABLE


def test_registry_is_fetched_once_per_interval(world):
    for _ in range(5):
        world.verifier.verify(world.a.token(world.b.did, world.clock()))
    assert world.source.fetches == 1


def test_pinned_authority_key_rejects_a_different_key(world):
    pinned = AnchorKeys([TrustAnchor(world.authority.did,
                                     public_key=EphemeralSigner().public_key_bytes())],
                        world.verifier._resolver)
    with pytest.raises(PeerAuthError) as e:
        credentials.verify(world.a.credential, issuer_key=pinned.key,
                           trusted_issuers={world.authority.did}, now=world.clock(), skew=30)
    assert e.value.reason is Reason.CREDENTIAL_BAD_SIGNATURE


def test_concurrent_stores_accept_a_jti_exactly_once(engine):
    """Several stores on one database (as gunicorn workers are) race on the same ids."""
    import threading

    from connectors.identity.store import SqlReplayStore

    stores = [SqlReplayStore(engine, clock=lambda: 0.0) for _ in range(4)]
    results: list[bool] = []
    lock = threading.Lock()

    def race(store, jti):
        ok = store.remember("did:web:x", jti, 10**10)
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=race, args=(s, f"j{i % 5}")) for i, s in
               enumerate(stores * 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 5 and len(results) == 40


def test_busy_sqlite_fails_closed_then_recovers(engine):
    from sqlalchemy.exc import OperationalError

    from connectors.identity.store import SqlReplayStore
    from tests.support.databases import is_postgres

    if is_postgres():
        pytest.skip("SQLite writer lock")
    store = SqlReplayStore(engine, clock=lambda: 0.0, sqlite_patience=0.2)
    holder = engine.connect()
    holder.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError):
            store.remember("did:web:x", "j", 10**10)
    finally:
        holder.exec_driver_sql("ROLLBACK")
        holder.close()
    assert store.remember("did:web:x", "j", 10**10)  # nothing was recorded by the failure
