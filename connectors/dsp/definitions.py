"""What a provider publishes: assets, policy definitions, contract definitions.

A contract definition binds an access policy (who may see the offer in the catalog),
a contract policy (the terms offered and checked at negotiation) and an asset selector
(criteria on asset id, classification, home region or properties, all ANDed; empty =
every asset). :meth:`Criterion.matches` is the in-memory twin of the SQL the store
generates, so both always agree.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from connectors.dsp.errors import InvalidMessageError

EDC_NS = "https://w3id.org/edc/v0.0.1/ns/"


class Classification(StrEnum):
    """cn-auto data classification levels (一般 / 重要 / 核心)."""

    GENERAL = "general"
    IMPORTANT = "important"
    CORE = "core"


class Operator(StrEnum):
    """Asset selector operators (EDC criterion operators we can run in SQL)."""

    EQ = "="
    NEQ = "!="
    IN = "in"
    LIKE = "like"


# Left operands that name a column rather than a property (with the EDC spellings).
ID_OPERANDS = frozenset({"id", "@id", "edc:id", f"{EDC_NS}id"})
CLASSIFICATION_OPERANDS = frozenset({"classification", f"{EDC_NS}classification"})
REGION_OPERANDS = frozenset({"homeRegion", "home_region", f"{EDC_NS}homeRegion"})


@dataclass(frozen=True, slots=True)
class Criterion:
    """``operand_left operator operand_right`` over an asset."""

    operand_left: str
    operator: Operator
    operand_right: Any

    def __post_init__(self) -> None:
        if self.operator is Operator.IN:
            if not isinstance(self.operand_right, list | tuple) or not all(
                isinstance(x, str) for x in self.operand_right
            ):
                raise InvalidMessageError("an 'in' criterion needs a list of strings")
        elif not isinstance(self.operand_right, str):
            raise InvalidMessageError(f"a '{self.operator}' criterion needs a string operand")

    def to_json(self) -> dict[str, Any]:
        right = list(self.operand_right) if self.operator is Operator.IN else self.operand_right
        return {
            "operandLeft": self.operand_left,
            "operator": self.operator.value,
            "operandRight": right,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Criterion:
        try:
            op = Operator(str(doc.get("operator", "")).lower())
        except ValueError:
            raise InvalidMessageError(
                f"unsupported selector operator {doc.get('operator')!r}; "
                f"use one of {[o.value for o in Operator]}"
            ) from None
        left = doc.get("operandLeft")
        if not isinstance(left, str) or not left:
            raise InvalidMessageError("a criterion needs an operandLeft")
        return cls(left, op, doc.get("operandRight"))

    def value_of(self, asset: Asset) -> str | None:
        """The asset's value for this criterion's left operand (None if it has none)."""
        left = self.operand_left
        if left in ID_OPERANDS:
            return asset.id
        if left in CLASSIFICATION_OPERANDS:
            return asset.classification.value
        if left in REGION_OPERANDS:
            return asset.home_region
        value = asset.properties.get(left)
        return None if value is None or isinstance(value, dict | list) else str(value)

    def matches(self, asset: Asset) -> bool:
        value = self.value_of(asset)
        if value is None:
            return False
        if self.operator is Operator.EQ:
            return value == self.operand_right
        if self.operator is Operator.NEQ:
            return value != self.operand_right
        if self.operator is Operator.IN:
            return value in self.operand_right
        return like_matches(value, self.operand_right)


def like_matches(value: str, pattern: str) -> bool:
    """SQL LIKE (``%`` any run, ``_`` one character), case-sensitive as on PostgreSQL."""
    translated = "".join(
        "*" if c == "%" else "?" if c == "_" else f"[{c}]" if c in "*?[" else c for c in pattern
    )
    return fnmatch.fnmatchcase(value, translated)


def selector_matches(selector: Sequence[Criterion], asset: Asset) -> bool:
    """All criteria hold (an empty selector selects every asset)."""
    return all(c.matches(asset) for c in selector)


@dataclass(frozen=True, slots=True)
class Asset:
    """A dataset a provider offers: public properties (shown in the catalog), private ones,
    the data address the data plane reads from, and its cn-auto classification and region."""

    id: str
    properties: dict[str, Any] = field(default_factory=dict)
    data_address: dict[str, Any] = field(default_factory=dict)
    private_properties: dict[str, Any] = field(default_factory=dict)
    classification: Classification = Classification.GENERAL
    home_region: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0


@dataclass(frozen=True, slots=True)
class PolicyDefinition:
    """A named ODRL policy (compact, DSP context terms: ``permission``, ``constraint``...)."""

    id: str
    policy: dict[str, Any]
    private_properties: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0


@dataclass(frozen=True, slots=True)
class ContractDefinition:
    """Which assets are offered, to whom (access policy) and on which terms (contract policy)."""

    id: str
    access_policy_id: str
    contract_policy_id: str
    assets_selector: tuple[Criterion, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0
