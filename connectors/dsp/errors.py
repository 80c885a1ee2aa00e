"""The failure families of the protocol layer.

Each error carries what the HTTP binding needs to answer as the spec says: an HTTP
status, a ``code`` and human-readable ``reasons`` for the DSP error body
(CatalogError, ContractNegotiationError, TransferError), and the pids when known.
Nothing here formats HTTP; :func:`connectors.dsp.messages.error_for` builds the body.
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors.dsp.vocabulary import ErrorCode


class DspError(Exception):
    """Base of every protocol failure; never escapes to a client as a traceback."""

    status: int = 400
    default_code: str = ErrorCode.INVALID_MESSAGE

    def __init__(
        self,
        reasons: str | Sequence[str],
        *,
        code: str | None = None,
        provider_pid: str | None = None,
        consumer_pid: str | None = None,
    ) -> None:
        self.reasons: tuple[str, ...] = (reasons,) if isinstance(reasons, str) else tuple(reasons)
        self.code = code or self.default_code
        self.provider_pid = provider_pid
        self.consumer_pid = consumer_pid
        super().__init__(f"{self.code}: {'; '.join(self.reasons)}")


class InvalidMessageError(DspError):
    """The document is not a valid DSP message (missing field, wrong type, wrong @type). 400."""


class InvalidTransitionError(DspError):
    """A valid message not allowed in the process's current state or from its sender. 400."""

    default_code = ErrorCode.INVALID_TRANSITION

    def __init__(
        self,
        *,
        process: str,
        from_state: str | None,
        to_state: str,
        sender: str,
        message: str,
        provider_pid: str | None = None,
        consumer_pid: str | None = None,
    ) -> None:
        self.process = process
        self.from_state = from_state
        self.to_state = to_state
        self.sender = sender
        self.message = message
        origin = from_state or "(new)"
        super().__init__(
            f"{process} cannot go from {origin} to {to_state} on {message} sent by the {sender}",
            provider_pid=provider_pid,
            consumer_pid=consumer_pid,
        )


class ProcessNotFoundError(DspError):
    """Unknown pid, or a caller not party to the process (indistinguishable on purpose). 404."""

    status = 404
    default_code = ErrorCode.NOT_FOUND


class RequestRejectedError(DspError):
    """A valid request the provider refuses outright (unknown offer, unknown agreement...). 400."""


class ConflictError(DspError):
    """The stored entity changed under us (optimistic version check failed); retry. 409."""

    status = 409
    default_code = ErrorCode.CONFLICT
