"""The provider's data plane as the control plane sees it: :class:`DataPlaneFlow`.

``start`` implements :class:`connectors.dsp.transfer_handlers.DataFlow`: it is called
inside the transfer's store transaction, so it only reads (the asset) and signs (the EDR);
it never writes. For a pull it returns the EDR; for a push it checks the destination and
returns None: the push worker (:mod:`connectors.dataplane.push`) finds STARTED push
transfers in the database and delivers them, so a crash between the commit and the push
loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.dataplane.edr import EdrIssuer
from connectors.dataplane.gate import (
    AccessDenied,
    AgreementView,
    TransferView,
    UsageGate,
    policy_document,
)
from connectors.dataplane.sources import SOURCE_TYPES, address_type
from connectors.dataplane.tokens import Grant
from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.errors import DspError
from connectors.dsp.messages import DataAddress
from connectors.dsp.transfer import TransferProcessEntity
from connectors.dsp.transfer_handlers import DataFlowError

PUSH_SUFFIX = "-PUSH"
PULL_SUFFIX = "-PULL"


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a push goes: URL, HTTP method and the header that authorises it."""

    url: str
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()


def is_push(transfer_format: str, data_address: Mapping[str, Any] | None) -> bool:
    """Push when the format says so (``HttpData-PUSH``) or a pull-less format has a destination."""
    fmt = transfer_format.upper()
    if fmt.endswith(PUSH_SUFFIX):
        return True
    if fmt.endswith(PULL_SUFFIX):
        return False
    return data_address is not None


def destination(data_address: Mapping[str, Any] | None) -> Destination:
    """The consumer's push destination from its DSP DataAddress.

    ``endpoint`` (or the property ``baseUrl``) is the URL, plus the optional property
    ``path``; authorisation is ``authorization`` (with ``authType`` bearer) or the
    ``authKey``/``authCode`` header pair; ``method`` defaults to POST.

    Raises:
        DataFlowError: no usable http(s) URL.
    """
    if not data_address:
        raise DataFlowError("a push transfer needs a dataAddress with the destination endpoint")
    try:
        addr = DataAddress.from_json(data_address)
    except DspError as exc:
        raise DataFlowError(f"the push destination is not a DataAddress: {exc}") from None
    url = addr.endpoint or addr.property("baseUrl") or ""
    if not url.startswith(("http://", "https://")):
        raise DataFlowError("the push destination must be an http(s) endpoint")
    path = addr.property("path")
    if path:
        url = url.rstrip("/") + "/" + path.lstrip("/")
    headers: list[tuple[str, str]] = []
    token = addr.property("authorization")
    if token:
        kind = (addr.property("authType") or "").lower()
        headers.append(("Authorization", f"Bearer {token}" if kind == "bearer" else token))
    key, code = addr.property("authKey"), addr.property("authCode")
    if key and code is not None:
        headers.append((key, code))
    method = (addr.property("method") or "POST").upper()
    if method not in ("POST", "PUT", "PATCH"):
        raise DataFlowError(f"push method must be POST, PUT or PATCH, not {method}")
    return Destination(url, method, tuple(headers))


class DataPlaneFlow:
    """``DataFlow`` for the provider: EDR for pull, checked destination for push.

    Args:
        gate: reads assets (and decides accesses later).
        issuer: builds EDRs.
    """

    def __init__(self, gate: UsageGate, issuer: EdrIssuer) -> None:
        self.gate = gate
        self.issuer = issuer

    def start(
        self, transfer: TransferProcessEntity, agreement: ContractAgreement
    ) -> DataAddress | None:
        """Prepare the data flow of a starting (or resuming) transfer.

        Raises:
            DataFlowError: unknown asset, unsupported source, core data, bad destination.
        """
        asset = self.gate.asset(agreement.asset_id)
        if asset is None:
            raise DataFlowError(f"asset {agreement.asset_id} is not offered any more")
        kind = address_type(asset.data_address)
        if kind not in SOURCE_TYPES:
            raise DataFlowError(
                f"asset {asset.id} has data address type {kind or 'none'!r}; this data plane "
                f"serves {', '.join(SOURCE_TYPES)}"
            )
        view = TransferView(transfer.id, transfer.state.value, agreement.id, agreement.asset_id,
                            transfer.counter_party_id, transfer.format, transfer.data_address,
                            dict(transfer.extra.get("claims") or {}))
        try:  # refuse now what every access would refuse (core data, unapproved export)
            self.gate.floor(
                AgreementView(agreement.id, agreement.asset_id, agreement.consumer_id,
                              policy_document(agreement.policy), agreement.signed_at),
                asset, view)
        except AccessDenied as exc:
            raise DataFlowError(f"{'; '.join(exc.reasons)} (cn-auto)") from None
        if is_push(transfer.format, transfer.data_address):
            destination(transfer.data_address)
            return None
        grant = Grant(agreement.id, transfer.id, agreement.asset_id, transfer.counter_party_id)
        return self.issuer.data_address(grant)
