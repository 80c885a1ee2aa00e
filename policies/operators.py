"""The twelve ODRL 2.2 operators over typed values, in three-valued logic.

Each operator function takes the left values (a list: one value, or several when the
left operand is multi-valued, e.g. the framework agreements a party signed), the right
values (one, or a list) and the state (for ``partOf`` / ``isA`` knowledge), and returns
``True`` (satisfied), ``False`` (unsatisfied) or ``None`` (cannot be decided).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policies.request import State
from policies.vocab import ODRL

MAX_MEMBERSHIP_DEPTH = 16


def reachable(item: str, relation: dict[str, frozenset[str]]) -> set[str]:
    """Everything ``item`` is (transitively) part of / an instance of, bounded."""
    out: set[str] = set()
    frontier = [item]
    for _ in range(MAX_MEMBERSHIP_DEPTH):
        nxt = []
        for x in frontier:
            for parent in relation.get(x, ()):
                if parent not in out:
                    out.add(parent)
                    nxt.append(parent)
        if not nxt:
            break
        frontier = nxt
    return out


def _hashable(values: list) -> set:
    return {v for v in values}


def op_eq(left: list, right: list, state: State) -> bool | None:
    if len(right) == 1:
        r = right[0]
        return any(v == r for v in left)
    return _hashable(left) == _hashable(right)


def op_neq(left: list, right: list, state: State) -> bool | None:
    result = op_eq(left, right, state)
    return None if result is None else not result


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[list, list, State], bool | None]:
    def run(left: list, right: list, state: State) -> bool | None:
        if len(right) != 1 or not left:
            return None
        r = right[0]
        try:
            return all(test(v, r) for v in left)
        except TypeError:  # values of kinds that do not order against each other
            return None

    return run


op_lt = _ordered(lambda a, b: a < b)
op_lteq = _ordered(lambda a, b: a <= b)
op_gt = _ordered(lambda a, b: a > b)
op_gteq = _ordered(lambda a, b: a >= b)


def op_is_any_of(left: list, right: list, state: State) -> bool | None:
    return not _hashable(left).isdisjoint(right)


def op_is_all_of(left: list, right: list, state: State) -> bool | None:
    return _hashable(right) <= _hashable(left)


def op_is_none_of(left: list, right: list, state: State) -> bool | None:
    return _hashable(left).isdisjoint(right)


def op_is_part_of(left: list, right: list, state: State) -> bool | None:
    rights = _hashable(right)
    for v in left:
        if v in rights:
            continue
        if isinstance(v, str) and rights & reachable(v, state.memberships):
            continue
        return False
    return True


def op_has_part(left: list, right: list, state: State) -> bool | None:
    lefts = _hashable(left)
    for r in right:
        if r in lefts:
            continue
        if isinstance(r, str) and lefts & reachable(r, state.memberships):
            continue
        return False
    return True


def op_is_a(left: list, right: list, state: State) -> bool | None:
    # Instance-of, from the types the state knows (a class is not an instance of itself).
    rights = _hashable(right)
    for v in left:
        if isinstance(v, str):
            classes = set(state.types.get(v, ()))
            for c in list(classes):
                classes |= reachable(c, state.memberships)
            if classes & rights:
                return True
    return False


OPERATOR_FUNCTIONS: dict[str, Callable[[list, list, State], bool | None]] = {
    ODRL + "eq": op_eq,
    ODRL + "neq": op_neq,
    ODRL + "lt": op_lt,
    ODRL + "lteq": op_lteq,
    ODRL + "gt": op_gt,
    ODRL + "gteq": op_gteq,
    ODRL + "isAnyOf": op_is_any_of,
    ODRL + "isAllOf": op_is_all_of,
    ODRL + "isNoneOf": op_is_none_of,
    ODRL + "isPartOf": op_is_part_of,
    ODRL + "hasPart": op_has_part,
    ODRL + "isA": op_is_a,
}
ORDERING = frozenset(ODRL + o for o in ("lt", "lteq", "gt", "gteq"))
NEGATIVE = frozenset({ODRL + "neq", ODRL + "isNoneOf"})
