"""Provider and consumer transfer-process machines (sans I/O).

The provider starts a requested transfer as soon as the agreement allows it: the
injected :class:`DataFlow` prepares the data plane (for a pull it returns the endpoint
data reference that goes into the TransferStartMessage; for a push it starts pushing
to the consumer's address). Suspension, completion and termination may come from
either side; the data plane checks the process state on every access, so a state
change here stops access at once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from connectors.dsp import transfer as t
from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.errors import InvalidMessageError, ProcessNotFoundError, RequestRejectedError
from connectors.dsp.messages import (
    DataAddress,
    Message,
    TransferCompletionMessage,
    TransferProcess,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connectors.dsp.negotiation import ErrorDetail
from connectors.dsp.outcome import Outcome, Outgoing, ProcessKind, urn_uuid
from connectors.dsp.policy import Caller, PolicyChecker, check_policy
from connectors.dsp.transfer import TransferMessage, TransferProcessEntity
from connectors.dsp.validation import check_callback_address
from connectors.dsp.vocabulary import ErrorCode, Path, PolicyScope, Role, TransferState, path_for

S = TransferState
M = TransferMessage
TransferOutcome = Outcome[TransferProcessEntity]


class DataFlowError(Exception):
    """The data plane cannot serve this transfer; the message is the human-readable reason."""


class AgreementLookup(Protocol):
    """Find a stored agreement by id (None if unknown)."""

    def __call__(self, agreement_id: str) -> ContractAgreement | None: ...


class DataFlow(Protocol):
    """The provider's data plane, as the control plane sees it.

    ``start`` is called when a transfer starts or resumes; it returns the DataAddress the
    consumer pulls from (pull formats) or None (push formats, the data plane pushes to
    ``transfer.data_address``). Raises :class:`DataFlowError` to refuse.
    """

    def start(
        self, transfer: TransferProcessEntity, agreement: ContractAgreement
    ) -> DataAddress | None: ...


def ack(entity: TransferProcessEntity) -> TransferProcess:
    """The TransferProcess ACK body for ``entity``."""
    return TransferProcess(
        provider_pid=entity.provider_pid or "",
        consumer_pid=entity.consumer_pid or "",
        state=entity.state,
    )


def owned(
    caller: Caller, current: TransferProcessEntity | None, role: Role, pid: str
) -> TransferProcessEntity:
    """The entity if it exists, is ours in ``role`` and the caller is its peer; else 404."""
    if (
        current is None
        or current.role is not role
        or current.counter_party_id != caller.participant_id
    ):
        raise ProcessNotFoundError(
            f"no transfer process {pid} for this participant",
            **{"provider_pid" if role is Role.PROVIDER else "consumer_pid": pid},
        )
    return current


def _check_pids(entity: TransferProcessEntity, provider_pid: str, consumer_pid: str) -> None:
    if entity.provider_pid not in (None, provider_pid) or entity.consumer_pid not in (
        None,
        consumer_pid,
    ):
        raise InvalidMessageError(
            f"pids {provider_pid}/{consumer_pid} do not match this transfer process",
            provider_pid=entity.provider_pid,
            consumer_pid=entity.consumer_pid,
        )


_TARGET_BY_MESSAGE = {
    TransferSuspensionMessage: (S.SUSPENDED, M.SUSPENSION),
    TransferCompletionMessage: (S.COMPLETED, M.COMPLETION),
    TransferTerminationMessage: (S.TERMINATED, M.TERMINATION),
}
_PATH_BY_MESSAGE = {
    M.START: Path.TRANSFER_START,
    M.SUSPENSION: Path.TRANSFER_SUSPENSION,
    M.COMPLETION: Path.TRANSFER_COMPLETION,
    M.TERMINATION: Path.TRANSFER_TERMINATION,
}


class _Base:
    role: Role

    def __init__(
        self,
        *,
        participant_id: str,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = urn_uuid,
    ) -> None:
        self.participant_id = participant_id
        self.clock = clock
        self.new_id = new_id

    def _out(
        self, entity: TransferProcessEntity, message: Message, template: str, pid: str | None = None
    ) -> Outgoing:
        if pid is None:
            pid = entity.provider_pid if self.role is Role.CONSUMER else entity.consumer_pid
        return Outgoing(
            message=message,
            address=entity.counter_party_address,
            path=path_for(template, pid=pid or "") if "{pid}" in template else template,
            recipient_id=entity.counter_party_id,
            process_kind=ProcessKind.TRANSFER,
            process_id=entity.id,
        )

    def _send(
        self,
        entity: TransferProcessEntity,
        target: TransferState,
        message: TransferMessage,
        detail: ErrorDetail | None = None,
        data_address: DataAddress | None = None,
        **changes: Any,
    ) -> TransferOutcome:
        """Move by a message we send, and queue that message for the counter-party."""
        if detail is not None:
            changes["error"] = detail
        moved = t.transition(
            entity, target, sender=self.role, message=message, now=self.clock(), **changes
        )
        pp, cp = moved.provider_pid or "", moved.consumer_pid or ""
        code = None if detail is None else detail.code
        reasons = () if detail is None else detail.reasons
        wire: Message
        if message is M.START:
            wire = TransferStartMessage(provider_pid=pp, consumer_pid=cp, data_address=data_address)
        elif message is M.SUSPENSION:
            wire = TransferSuspensionMessage(
                provider_pid=pp, consumer_pid=cp, code=code, reason=reasons
            )
        elif message is M.COMPLETION:
            wire = TransferCompletionMessage(provider_pid=pp, consumer_pid=cp)
        else:
            wire = TransferTerminationMessage(
                provider_pid=pp, consumer_pid=cp, code=code, reason=reasons
            )
        out: tuple[Outgoing, ...] = ()
        if moved.provider_pid and moved.consumer_pid:
            out = (self._out(moved, wire, _PATH_BY_MESSAGE[message]),)
        return Outcome(moved, ack(moved), out)

    def suspend(self, entity: TransferProcessEntity, detail: ErrorDetail) -> TransferOutcome:
        """Local command: suspend a started transfer, saying why."""
        return self._send(entity, S.SUSPENDED, M.SUSPENSION, detail)

    def complete(self, entity: TransferProcessEntity) -> TransferOutcome:
        """Local command: the transfer is complete."""
        return self._send(entity, S.COMPLETED, M.COMPLETION)

    def terminate(self, entity: TransferProcessEntity, detail: ErrorDetail) -> TransferOutcome:
        """Local command: end the transfer for good, saying why."""
        return self._send(entity, S.TERMINATED, M.TERMINATION, detail)

    def on_delivery_failed(self, entity: TransferProcessEntity, reason: str) -> TransferOutcome:
        """A message could not be delivered after every retry: terminate locally."""
        if entity.is_terminal:
            return Outcome(None, ack(entity), replayed=True)
        moved = t.transition(
            entity,
            S.TERMINATED,
            sender=self.role,
            message=M.TERMINATION,
            now=self.clock(),
            error=ErrorDetail(ErrorCode.DELIVERY_FAILED, (reason,)),
        )
        return Outcome(moved, ack(moved))

    def on_state_message(
        self, caller: Caller, msg: Message, current: TransferProcessEntity | None
    ) -> TransferOutcome:
        """Suspension, completion or termination from the counter-party."""
        target, message = _TARGET_BY_MESSAGE[type(msg)]
        pp, cp = msg.provider_pid, msg.consumer_pid  # type: ignore[attr-defined]
        entity = owned(caller, current, self.role, pp if self.role is Role.PROVIDER else cp)
        _check_pids(entity, pp, cp)
        if entity.state is target:
            return Outcome(None, ack(entity), replayed=True)
        changes: dict[str, Any] = {
            "provider_pid": entity.provider_pid or pp,
            "consumer_pid": entity.consumer_pid or cp,
        }
        if isinstance(msg, TransferSuspensionMessage | TransferTerminationMessage):
            changes["error"] = ErrorDetail(
                msg.code or ErrorCode.OPERATOR, tuple(str(r) for r in msg.reason)
            )
        moved = t.transition(
            entity, target, sender=self.role.other, message=message, now=self.clock(), **changes
        )
        return Outcome(moved, ack(moved))

    def describe(
        self, caller: Caller, current: TransferProcessEntity | None, pid: str
    ) -> TransferProcess:
        """``GET /transfers/:pid``: the state, only to the counter-party (404 otherwise)."""
        return ack(owned(caller, current, self.role, pid))


class ProviderTransferMachine(_Base):
    """The provider's side: checks the agreement, starts the data flow."""

    role = Role.PROVIDER

    def __init__(
        self,
        *,
        participant_id: str,
        agreements: AgreementLookup,
        data_flow: DataFlow,
        checker: PolicyChecker,
        clock: Callable[[], datetime],
        formats: Collection[str] | None = None,
        new_id: Callable[[], str] = urn_uuid,
    ) -> None:
        super().__init__(participant_id=participant_id, clock=clock, new_id=new_id)
        self.agreements = agreements
        self.data_flow = data_flow
        self.checker = checker
        self.formats = None if formats is None else frozenset(formats)

    def handle(
        self, caller: Caller, msg: Message, current: TransferProcessEntity | None
    ) -> TransferOutcome:
        """Dispatch a consumer message (already parsed and validated)."""
        if isinstance(msg, TransferRequestMessage):
            return self.on_request(caller, msg, current)
        if isinstance(msg, TransferStartMessage):
            return self.on_start(caller, msg, current)
        if type(msg) in _TARGET_BY_MESSAGE:
            return self.on_state_message(caller, msg, current)
        raise InvalidMessageError(f"a provider does not accept {msg.TYPE.value}")

    def on_request(
        self, caller: Caller, msg: TransferRequestMessage, current: TransferProcessEntity | None
    ) -> TransferOutcome:
        """A new transfer (``current`` = the caller's process with that consumerPid, if any)."""
        if current is not None:  # same consumer, same consumerPid: idempotent
            owned(caller, current, Role.PROVIDER, current.id)
            return Outcome(None, ack(current), replayed=True)
        agreement = self.agreements(msg.agreement_id)
        if (
            agreement is None
            or agreement.consumer_id != caller.participant_id
            or agreement.provider_id != self.participant_id
        ):
            raise RequestRejectedError(
                f"no agreement {msg.agreement_id} with this participant",
                code=ErrorCode.UNKNOWN_AGREEMENT,
                consumer_pid=msg.consumer_pid,
            )
        if self.formats is not None and msg.format not in self.formats:
            raise RequestRejectedError(
                f"format {msg.format} is not offered; use one of {sorted(self.formats)}",
                code=ErrorCode.UNSUPPORTED_FORMAT,
                consumer_pid=msg.consumer_pid,
            )
        check_callback_address(msg.callback_address, consumer_pid=msg.consumer_pid)
        now = self.clock()
        t.check(None, S.REQUESTED, sender=Role.CONSUMER, message=M.REQUEST)
        pid = self.new_id()
        entity = TransferProcessEntity(
            id=pid,
            role=Role.PROVIDER,
            state=S.REQUESTED,
            counter_party_id=caller.participant_id,
            counter_party_address=msg.callback_address,
            agreement_id=msg.agreement_id,
            format=msg.format,
            created_at=now,
            updated_at=now,
            consumer_pid=msg.consumer_pid,
            provider_pid=pid,
            dataset_id=agreement.asset_id,
            data_address=None if msg.data_address is None else msg.data_address.to_json(),
            extra={"claims": dict(caller.claims)},
        )  # re-checked when the provider resumes
        outcome = self._start(caller, entity, agreement)
        return Outcome(outcome.entity, ack(entity), outcome.outgoing, created=True)

    def _start(
        self, caller: Caller, entity: TransferProcessEntity, agreement: ContractAgreement
    ) -> TransferOutcome:
        decision = check_policy(
            self.checker,
            agreement.policy,
            scope=PolicyScope.TRANSFER,
            caller=caller,
            context={
                "agreement_id": agreement.id,
                "transfer_id": entity.id,
                "dataset_id": agreement.asset_id,
                "format": entity.format,
            },
        )
        if not decision.allowed:
            return self.terminate(entity, ErrorDetail(ErrorCode.POLICY_DENIED, decision.reasons))
        try:
            address = self.data_flow.start(entity, agreement)
        except DataFlowError as exc:
            return self.terminate(entity, ErrorDetail(ErrorCode.DATA_FLOW_FAILED, (str(exc),)))
        return self._send(entity, S.STARTED, M.START, data_address=address)

    def resume(
        self, entity: TransferProcessEntity, caller: Caller | None = None
    ) -> TransferOutcome:
        """Local command: resume a suspended transfer (new start message, fresh address).

        The agreement policy is checked again for ``caller`` (default: the consumer with the
        claims verified when it requested the transfer).
        """
        caller = caller or Caller(entity.counter_party_id, dict(entity.extra.get("claims", {})))
        agreement = self.agreements(entity.agreement_id)
        t.check(
            entity.state,
            S.STARTED,
            sender=Role.PROVIDER,
            message=M.START,
            provider_pid=entity.provider_pid,
            consumer_pid=entity.consumer_pid,
        )
        if agreement is None:
            return self.terminate(
                entity,
                ErrorDetail(ErrorCode.UNKNOWN_AGREEMENT, ("the agreement is no longer on record",)),
            )
        return self._start(caller, entity, agreement)

    def on_start(
        self, caller: Caller, msg: TransferStartMessage, current: TransferProcessEntity | None
    ) -> TransferOutcome:
        """The consumer resumes a suspended transfer."""
        entity = owned(caller, current, Role.PROVIDER, msg.provider_pid)
        _check_pids(entity, msg.provider_pid, msg.consumer_pid)
        if entity.state is S.STARTED:
            return Outcome(None, ack(entity), replayed=True)
        moved = t.transition(
            entity, S.STARTED, sender=Role.CONSUMER, message=M.START, now=self.clock(), error=None
        )
        return Outcome(moved, ack(moved))


class ConsumerTransferMachine(_Base):
    """The consumer's side: requests transfers, keeps the pull address the provider sends."""

    role = Role.CONSUMER

    def __init__(
        self,
        *,
        participant_id: str,
        callback_address: str,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = urn_uuid,
    ) -> None:
        super().__init__(participant_id=participant_id, clock=clock, new_id=new_id)
        self.callback_address = callback_address

    def handle(
        self, caller: Caller, msg: Message, current: TransferProcessEntity | None
    ) -> TransferOutcome:
        """Dispatch a provider message arriving on a consumer callback endpoint."""
        if isinstance(msg, TransferStartMessage):
            return self.on_start(caller, msg, current)
        if type(msg) in _TARGET_BY_MESSAGE:
            return self.on_state_message(caller, msg, current)
        raise InvalidMessageError(f"a consumer does not accept {msg.TYPE.value}")

    def request(
        self,
        *,
        provider_id: str,
        provider_address: str,
        agreement: ContractAgreement,
        format: str,
        data_address: DataAddress | None = None,
    ) -> TransferOutcome:
        """Local command: ask for a transfer under ``agreement`` (push: pass ``data_address``)."""
        if agreement.consumer_id != self.participant_id or agreement.provider_id != provider_id:
            raise RequestRejectedError(
                f"agreement {agreement.id} is not between us and {provider_id}",
                code=ErrorCode.UNKNOWN_AGREEMENT,
            )
        now = self.clock()
        t.check(None, S.REQUESTED, sender=Role.CONSUMER, message=M.REQUEST)
        pid = self.new_id()
        entity = TransferProcessEntity(
            id=pid,
            role=Role.CONSUMER,
            state=S.REQUESTED,
            counter_party_id=provider_id,
            counter_party_address=provider_address,
            agreement_id=agreement.id,
            format=format,
            created_at=now,
            updated_at=now,
            consumer_pid=pid,
            dataset_id=agreement.asset_id,
            data_address=None if data_address is None else data_address.to_json(),
        )
        msg = TransferRequestMessage(
            consumer_pid=pid,
            agreement_id=agreement.id,
            format=format,
            callback_address=self.callback_address,
            data_address=data_address,
        )
        return Outcome(
            entity, ack(entity), (self._out(entity, msg, Path.TRANSFERS_REQUEST),), created=True
        )

    def on_acknowledged(
        self, entity: TransferProcessEntity, response: Mapping[str, Any]
    ) -> TransferOutcome:
        """Our request was ACKed: learn the providerPid (may already be known)."""
        if entity.provider_pid is not None:
            return Outcome(None, replayed=True)
        answer = TransferProcess.from_json(response)
        return Outcome(replace(entity, provider_pid=answer.provider_pid, updated_at=self.clock()))

    def resume(self, entity: TransferProcessEntity) -> TransferOutcome:
        """Local command: resume a suspended transfer (TransferStartMessage to the provider)."""
        return self._send(entity, S.STARTED, M.START, error=None)

    def on_start(
        self, caller: Caller, msg: TransferStartMessage, current: TransferProcessEntity | None
    ) -> TransferOutcome:
        """The provider started (or resumed) the transfer; keep its pull address."""
        entity = owned(caller, current, Role.CONSUMER, msg.consumer_pid)
        _check_pids(entity, msg.provider_pid, msg.consumer_pid)
        address = None if msg.data_address is None else msg.data_address.to_json()
        if entity.state is S.STARTED and (address is None or address == entity.data_address):
            return Outcome(None, ack(entity), replayed=True)
        if entity.state is S.STARTED:  # a fresh endpoint reference for a running transfer
            return Outcome(
                replace(entity, data_address=address, updated_at=self.clock()), ack(entity)
            )
        moved = t.transition(
            entity,
            S.STARTED,
            sender=Role.PROVIDER,
            message=M.START,
            now=self.clock(),
            provider_pid=entity.provider_pid or msg.provider_pid,
            data_address=address if address is not None else entity.data_address,
            error=None,
        )
        return Outcome(moved, ack(moved))
