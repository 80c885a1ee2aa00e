"""Error families of the federated package: one type per failure family, each saying what was
expected and what was found so an operator (or the coordinator's report) can act on it."""

from __future__ import annotations


class FederatedError(Exception):
    """Base of every error raised by ``federated``."""


class ProtocolError(FederatedError):
    """A message does not fit the protocol: wrong stage, wrong task or round, replay, bad shape.

    Attributes:
        expected: what the state machine was waiting for.
        found: what arrived instead.
    """

    def __init__(self, message: str, *, expected: str = "", found: str = "") -> None:
        super().__init__(message)
        self.expected = expected
        self.found = found


class ReplayError(ProtocolError):
    """A message for a (task, round, stage) that was already processed arrived again."""


class TransitionError(ProtocolError):
    """A state machine was asked to move along an edge its ``ALLOWED`` table does not have."""


class SecurityError(FederatedError):
    """A cryptographic check failed: bad signature, failed decryption, inconsistent keys."""


class RefusalError(FederatedError):
    """A participant refuses a request (both shares of one peer, guard said no, ...).

    The reason is meant to be carried back to the coordinator verbatim.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AbortError(FederatedError):
    """The round cannot complete (too few survivors for the threshold); nothing is revealed."""


class OverflowRiskError(FederatedError):
    """Quantised values could wrap around the modulus for the configured cohort and weights."""


class TaskFileError(FederatedError):
    """A task file is invalid; ``problems`` lists every problem found, each with its field path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid task file: " + "; ".join(problems))
        self.problems = problems
