"""Before round one: an agreement with every data owner, negotiated over DSP.

For each participant of a task that cites no agreement (and for which this node holds none),
the coordinator asks the owner's connector for the dataset the task names (a signed DSP
catalog request), picks the offer whose terms the owner's round guard can enforce (a
permission for ``cn:federatedCompute`` with readable limits, :mod:`node.fl.limits`), and
negotiates it with the node's own :class:`~connectors.dsp.service.DspProtocol` — the same
consumer machine ``POST /management/v3/contractnegotiations`` drives. The owner's
connector decides with its policy checker; its ``ContractAgreementMessage`` and final event
arrive at this node's DSP endpoint. We wait (bounded) for FINALIZED and put the agreement
id in the task. A participant that offers nothing usable, refuses, or does not answer in
time stops the run before anything is stored, with an error naming it and saying why.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from connectors.delivery import Dispatcher, MessageLog, PeerDirectory, PeerSender
from connectors.dsp.service import DspProtocol
from connectors.dsp.vocabulary import NegotiationState
from connectors.identity.errors import IdentityError
from connectors.identity.peer_client import PeerClient
from federated.errors import FederatedError
from federated.task import ParticipantSpec, TaskSpec
from node.fl.limits import PolicyLimitError, limits_from_policy
from node.fl.transport import Peer

log = logging.getLogger("autospace.fl")

DEFAULT_TIMEOUT = 30.0
DEFAULT_PROTOCOL_PATH = "/protocol"
_ENDED = {NegotiationState.FINALIZED, NegotiationState.TERMINATED}


class NegotiationError(FederatedError):
    """No agreement could be concluded with one or more participants (names them)."""


@dataclass
class Negotiator:
    """What negotiating needs from a node: its DSP consumer and its outbox.

    Attributes:
        protocol: this node's DSP protocol (consumer side) over its connector store.
        peer_client: signs the catalog request to each owner.
        deliver: sends what the protocol queued: in a server, a kick of its dispatcher
            thread; in a CLI process, a drain of its own outbox dispatcher.
        timeout: seconds to wait for each agreement to be FINALIZED.
        poll: seconds between looks at the store.
    """

    protocol: DspProtocol
    peer_client: PeerClient
    deliver: Callable[[], object]
    timeout: float = DEFAULT_TIMEOUT
    poll: float = 0.1


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def protocol_url(peer: Peer, http: httpx.Client) -> str:
    """The owner's DSP base URL, from its public version document (``/protocol`` when the
    document does not say)."""
    try:
        doc = http.get(peer.url + "/.well-known/dspace-version", timeout=10).json()
        path = doc["protocolVersions"][0]["path"]
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
        path = DEFAULT_PROTOCOL_PATH
    path = path if isinstance(path, str) and path.startswith("/") else DEFAULT_PROTOCOL_PATH
    return peer.url + path.rstrip("/")


def federated_offer(dataset: Mapping[str, Any], asset: str, provider_id: str
                    ) -> dict[str, Any]:
    """The first offer of ``dataset`` whose terms permit federated rounds the owner can
    check, as a DSP offer for a contract request.

    Raises:
        NegotiationError: no such offer (the reasons of each rejected one are listed).
    """
    problems: list[str] = []
    for offer in _as_list(dataset.get("hasPolicy")):
        if not isinstance(offer, dict) or not isinstance(offer.get("@id"), str):
            continue
        try:
            limits_from_policy(offer, "")
        except PolicyLimitError as exc:
            problems.append(f"offer {offer['@id']}: {exc}")
            continue
        terms = {k: v for k, v in offer.items() if k != "@context"}
        return {**terms, "@type": "Offer", "target": asset, "assigner": provider_id}
    detail = "; ".join(problems) if problems else "the dataset carries no offer"
    raise NegotiationError(f"no federated-compute offer for {asset}: {detail}")


def _dataset(neg: Negotiator, peer: Peer, base: str, asset: str) -> dict[str, Any]:
    url = f"{base}/catalog/datasets/{quote(asset, safe='')}"
    try:
        response = neg.peer_client.request("GET", url, audience=peer.did)
    except (httpx.HTTPError, IdentityError) as exc:
        raise NegotiationError(f"its catalog did not answer: {exc}") from None
    if response.status_code == 404:
        raise NegotiationError(f"its catalog shows this node no dataset {asset!r}")
    if response.status_code >= 400:
        raise NegotiationError(f"its catalog answered {response.status_code}: "
                               f"{response.text[:200]}")
    try:
        doc = response.json()
    except ValueError:
        raise NegotiationError("its catalog answered something that is not JSON") from None
    if not isinstance(doc, dict):
        raise NegotiationError("its catalog answered something that is not a dataset")
    return doc


def _start(neg: Negotiator, p: ParticipantSpec, peer: Peer, http: httpx.Client
           ) -> tuple[str | None, str | None]:
    """(agreement id reused, negotiation id started) for one participant."""
    provider_id = peer.participant_id or p.id
    base = protocol_url(peer, http)
    offer = federated_offer(_dataset(neg, peer, base, p.asset), p.asset, provider_id)
    held = neg.protocol.reusable_agreement(provider_id=provider_id, offer=offer)
    if held is not None:
        return held.id, None
    entity = neg.protocol.start_negotiation(provider_id=provider_id, provider_address=base,
                                            offer=offer)
    return None, entity.id


def _wait(neg: Negotiator, pending: dict[str, str], clock: Callable[[], float]
          ) -> tuple[dict[str, str], dict[str, str]]:
    """Wait for the negotiations ``{participant: negotiation id}``: (agreements, failures)."""
    agreed: dict[str, str] = {}
    failed: dict[str, str] = {}
    deadline = clock() + neg.timeout
    while pending:
        neg.deliver()
        with neg.protocol.store.transaction() as tx:
            found = {pid: tx.get_negotiation(nid) for pid, nid in pending.items()}
        for pid, entity in found.items():
            if entity is None or entity.state not in _ENDED:
                continue
            del pending[pid]
            if entity.state == NegotiationState.FINALIZED and entity.agreement_id:
                agreed[pid] = entity.agreement_id
            else:
                why = "; ".join(entity.error.reasons) if entity.error else ""
                code = entity.error.code if entity.error else "terminated"
                failed[pid] = f"it refused the agreement ({code}{': ' + why if why else ''})"
        if pending and clock() >= deadline:
            for pid, nid in pending.items():
                entity = found.get(pid)
                state = entity.state.value if entity is not None else "unknown"
                failed[pid] = (f"no agreement within {neg.timeout:g} s "
                               f"(negotiation {nid} is {state})")
            break
        if pending:
            time.sleep(neg.poll)
    return agreed, failed


def negotiate_agreements(neg: Negotiator, task: TaskSpec, peers: Mapping[str, Peer], *,
                         clock: Callable[[], float] = time.monotonic) -> TaskSpec:
    """The task with an agreement for every participant, negotiated where missing.

    Raises:
        NegotiationError: some participant offers no usable terms, refuses, or does not
            conclude in time; the message names each one and why.
    """
    missing = [p for p in task.participants if not p.agreement]
    if not missing:
        return task
    agreed: dict[str, str] = {}
    failed: dict[str, str] = {}
    pending: dict[str, str] = {}
    with httpx.Client() as http:
        for p in missing:
            try:
                reused, started = _start(neg, p, peers[p.id], http)
            except NegotiationError as exc:
                failed[p.id] = str(exc)
                continue
            except Exception as exc:  # a store or protocol error: name the participant
                log.exception("fl task %s: negotiating with %s failed", task.id, p.id)
                failed[p.id] = f"negotiation could not start: {exc}"
                continue
            if reused is not None:
                agreed[p.id] = reused
            elif started is not None:
                pending[p.id] = started
    if pending:
        done, late = _wait(neg, pending, clock)
        agreed.update(done)
        failed.update(late)
    if failed:
        raise NegotiationError("no agreement for federated computation with " + "; ".join(
            f"{pid}: {why}" for pid, why in sorted(failed.items())))
    for pid, aid in sorted(agreed.items()):
        log.info("fl task %s: %s trains under agreement %s (DSP)", task.id, pid, aid)
    return replace(task, participants=tuple(
        replace(p, agreement=agreed[p.id]) if p.id in agreed else p
        for p in task.participants))


class _NoDataFlow:
    """A coordinator negotiating from the CLI serves no transfers from that process."""

    def start(self, transfer: Any, agreement: Any) -> Any:
        from connectors.dsp.transfer_handlers import DataFlowError

        raise DataFlowError("this process only negotiates; the node's server serves data")


def negotiator_for_context(ctx: Any, timeout: float = DEFAULT_TIMEOUT) -> Negotiator:
    """A negotiator for a node context outside its server (``autospace fl run``): the same
    store, identity, protocol URL, policy profile and ledger hook as the server's connector,
    so what the owner sends back lands at the server and is recorded there as usual."""
    from connectors.dsp.policy import engine_normaliser
    from connectors.dsp.store import ConnectorStore
    from connectors.ledger_hook import recorder_for
    from connectors.policy_checker import CachedNormaliser, EnginePolicyChecker
    from connectors.wiring import settings

    cfg = settings(ctx.config)

    def now() -> datetime:
        return datetime.fromtimestamp(ctx.clock(), UTC)

    recorder = recorder_for(ctx.config, now)
    store = ConnectorStore(ctx.engine, clock=now, hooks=() if recorder is None else (recorder,))
    protocol = DspProtocol(
        store, participant_id=ctx.config.participant_id,
        protocol_url=ctx.config.public_url.rstrip("/") + cfg["protocol_path"],
        checker=EnginePolicyChecker(store, profile=cfg["profile"], clock=now),
        data_flow=_NoDataFlow(), clock=now, normaliser=CachedNormaliser(engine_normaliser))
    authorities = list(ctx.anchor_keys.anchors) if ctx.anchor_keys is not None else []
    sender = PeerSender(ctx.peer_client, PeerDirectory(ctx.registries, authorities),
                        MessageLog(None))
    owner = f"{socket.gethostname()}:{os.getpid()}:fl-negotiate"
    return Negotiator(protocol, ctx.peer_client, Dispatcher(protocol, sender, owner=owner).drain,
                      timeout=timeout)


def negotiator_for_app(app: Any, timeout: float = DEFAULT_TIMEOUT) -> Negotiator | None:
    """The server's own connector as a negotiator (None without the connector component)."""
    from connectors.wiring import RUNTIME_EXTENSION

    rt = app.extensions.get(RUNTIME_EXTENSION)
    if rt is None:
        return None
    return Negotiator(rt.protocol, rt.peer_client, rt.dispatcher.kick, timeout=timeout)
