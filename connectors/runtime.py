"""What the connector's HTTP layers share in one process: the protocol and its helpers.

Built by :mod:`connectors.wiring` from the node context; the DSP binding and the
management API read it, the worker job drives its dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from connectors.delivery import Dispatcher, MessageLog, PeerDirectory
from connectors.dsp.service import DspProtocol
from connectors.dsp.store import ConnectorStore
from connectors.identity.peer_client import PeerClient
from connectors.policy_checker import EnginePolicyChecker

#: The ``protocol`` value EDC management clients send for DSP 2025-1.
PROTOCOL_ID = "dataspace-protocol-http:2025-1"
#: Older spellings EDC clients use; accepted on input (we speak 2025-1 either way).
ACCEPTED_PROTOCOLS = frozenset({PROTOCOL_ID, "dataspace-protocol-http", "dataspace-protocol"})


@dataclass
class ConnectorRuntime:
    """One node's connector services.

    Attributes:
        protocol: DSP provider and consumer over the node's store.
        store: the connector store (same engine as the node).
        checker: the policy checker the protocol uses.
        directory: participant id <-> DID of members.
        peer_client: signs calls to peers (catalog requests from the management API).
        dispatcher: drains the outbox; ``kick()`` after anything committed a message.
        messages: optional JSON-lines log of DSP messages (tests).
        clock: the node clock as UTC datetimes.
        profile: the policy profile definitions are validated and evaluated with.
        protocol_path: the DSP base path (e.g. ``/protocol``).
        http: plain HTTP client (token refresh at a provider's data plane).
    """

    protocol: DspProtocol
    store: ConnectorStore
    checker: EnginePolicyChecker
    directory: PeerDirectory
    peer_client: PeerClient
    dispatcher: Dispatcher
    messages: MessageLog
    clock: Callable[[], datetime]
    profile: str
    protocol_path: str
    http: httpx.Client

    @property
    def participant_id(self) -> str:
        return self.protocol.participant_id

    @property
    def protocol_url(self) -> str:
        return self.protocol.protocol_url
