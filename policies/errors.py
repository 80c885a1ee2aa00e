"""One error type per failure family of the policy library."""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy document is not a valid policy (for the profile asked).

    Attributes:
        reasons: every problem found, each a sentence an operator can act on.
    """

    def __init__(self, reasons: list[str] | str) -> None:
        self.reasons = [reasons] if isinstance(reasons, str) else list(reasons)
        super().__init__("; ".join(self.reasons) or "invalid policy")


class RequestError(ValueError):
    """An evaluation request or state document is malformed."""
