"""Parse a policy's terms once, bind its id, target and parties at each use.

Every offer of a contract definition carries the same rules but has its own id (``@id``,
which names the asset), its own asset (``target``) and parties (``assigner``,
``assignee``). Parsing (JSON-LD expansion with the ODRL context, then the model) costs
milliseconds; binding four IRIs into an already-parsed policy costs microseconds.
:class:`PolicyTemplates` keys its cache on the policy without those four keys, parses it
with placeholders in their place, and substitutes the real values at each use.

Binding is used only where it gives exactly what a full parse would give (otherwise the
policy is parsed as a whole, as before):

- the four keys hold one plain string each (no list, no object with a refinement), and
  no two the same;
- the parse of the template put each placeholder nowhere but into an ``Asset``/``Party``
  IRI or the policy's uid, as written (so the context reads these keys as IRIs and does
  not rewrite them);
- each real value is one a JSON-LD processor leaves as it is: not empty, no whitespace,
  not keyword-like (``@...``), not a blank node, not a term or prefix any known context
  defines (so neither a vocabulary mapping nor a compact-IRI expansion can apply), and
  not any string of the policy itself, compact or expanded (no node of the document can
  be meant by it).
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import policies
from policies.jsonld import context_terms, defined_terms
from policies.model import Asset, Party

BOUND_KEYS = ("@id", "target", "assigner", "assignee")
# Placeholders: relative IRIs no context defines and no real policy contains.
_PLACEHOLDER = "autospace-bind-{key}-3f9c1e7a"
_KEY_NAMES = {"@id": "id"}
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_PLAIN = re.compile(r"^[^\s@\"<>\\^`{|}][^\s\"<>\\^`{|}]*$")


class _Unbindable(Exception):
    """The template's parse used a placeholder in a way binding cannot reproduce."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Template:
    policy: policies.Policy | None  # None: this shape is never bound (always a full parse)
    placeholders: Mapping[str, str]  # key -> placeholder used in the template's parse
    strings: frozenset[str]  # every string of the terms (keys and values)
    terms: frozenset[str]  # terms the policy's own inline contexts define


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _strings(value: Any) -> set[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, Mapping):
            found.update(k for k in item if isinstance(k, str))
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def _substitute(value: Any, mapping: Mapping[str, str]) -> Any:
    """``value`` (a parsed policy or a part of it) with placeholder IRIs of assets and
    parties replaced; any other appearance of a placeholder raises :class:`_Unbindable`."""
    if isinstance(value, Asset | Party):
        if value.iri in mapping:
            if value.collection or value.refinements:
                raise _Unbindable(value.iri)
            return dataclasses.replace(value, iri=mapping[value.iri])
        _check_string(value.iri, mapping)
        refinements = _substitute(value.refinements, mapping)
        return value if refinements == value.refinements else dataclasses.replace(
            value, refinements=refinements)
    if isinstance(value, policies.Policy):
        changes = {f.name: _substitute(getattr(value, f.name), mapping)
                   for f in dataclasses.fields(value) if f.name not in ("compiled", "uid")}
        uid = value.uid
        if uid is not None and uid in mapping:
            uid = mapping[uid]
        elif uid is not None:
            _check_string(uid, mapping)
        return dataclasses.replace(value, **changes, uid=uid, compiled={})
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _substitute(getattr(value, f.name), mapping)
                   for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(_substitute(v, mapping) for v in value)
    if isinstance(value, list):
        return [_substitute(v, mapping) for v in value]
    if isinstance(value, dict):
        return {_substitute(k, mapping): _substitute(v, mapping) for k, v in value.items()}
    if isinstance(value, str):
        _check_string(value, mapping)
    return value


def _check_string(text: str, mapping: Mapping[str, str]) -> None:
    for placeholder in mapping:
        if placeholder in text:
            raise _Unbindable(placeholder)


class PolicyTemplates:
    """Parsed policies, cached by their terms (without ``target``/``assigner``/``assignee``).

    Args:
        document: the JSON-LD document to parse for a compact policy (e.g. with the DSP
            ODRL profile context added).
        size: templates kept (least recently used dropped first).
    """

    def __init__(self, document: Callable[[Mapping[str, Any]], Any], size: int = 512) -> None:
        self.document = document
        self.size = size
        self._cache: OrderedDict[str, _Template] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.bound = 0

    def parse(self, policy: Mapping[str, Any]) -> policies.Policy:
        """The full parse (raises ``policies.PolicyError``)."""
        return policies.parse_policy(self.document(policy))

    def __call__(self, policy: Mapping[str, Any]) -> policies.Policy:
        """``policy`` parsed (raises ``policies.PolicyError`` when it is unreadable)."""
        bindings = {k: policy[k] for k in BOUND_KEYS if k in policy}
        if not bindings or not all(isinstance(v, str) for v in bindings.values()):
            return self.parse(policy)
        terms = {k: v for k, v in policy.items() if k not in BOUND_KEYS}
        key = canonical([sorted(bindings), terms])
        template = self._get(key)
        if template is None:
            template = self._build(terms, tuple(sorted(bindings)))
            self._put(key, template)
        if (
            template.policy is None
            or len(set(bindings.values())) != len(bindings)  # one value could name another
            or not all(self._plain(v, template) for v in bindings.values())
        ):
            return self.parse(policy)
        mapping = {template.placeholders[k]: v for k, v in bindings.items()}
        self.bound += 1
        return _substitute(template.policy, mapping)

    def _get(self, key: str) -> _Template | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return hit

    def _put(self, key: str, template: _Template) -> None:
        with self._lock:
            self._cache[key] = template
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)

    def _build(self, terms: dict[str, Any], keys: tuple[str, ...]) -> _Template:
        placeholders = {k: _PLACEHOLDER.format(key=_KEY_NAMES.get(k, k)) for k in keys}
        inline = frozenset(context_terms(terms.get("@context")))
        none = _Template(None, placeholders, frozenset(), inline)
        if any(p in s for p in placeholders.values() for s in _strings(terms)):
            return none
        doc = self.document({**terms, **placeholders})
        try:
            # every string of the document, also as expanded (the @id of each node): a
            # value equal to one of them could refer to that node
            strings = frozenset(_strings(doc) | _strings(policies.jsonld.expand(doc)))
            parsed = policies.parse_policy(doc)
        except (policies.PolicyError, policies.JsonLdError):
            return none  # the full parse of each use says why
        strings = strings - set(placeholders.values())
        if any(p in s for p in placeholders.values() for s in strings):
            return none
        # The template must show each placeholder as it was written, as an asset's or a
        # party's IRI, and nowhere else; then a value read the same way binds the same.
        identity = {p: p for p in placeholders.values()}
        try:
            if _substitute(parsed, identity) != parsed or not _uses(parsed, identity):
                return none
        except _Unbindable:
            return none
        return _Template(parsed, placeholders, strings, inline)

    @staticmethod
    def _plain(value: str, template: _Template) -> bool:
        """Whether JSON-LD reads ``value`` as itself wherever the placeholder was read so."""
        if not _PLAIN.match(value) or value.startswith("_:") or value in template.strings:
            return False
        known = defined_terms()
        head = value.split(":", 1)[0] if ":" in value else value
        if ":" in value and not _ABSOLUTE.match(value):
            return False
        return head not in known and head not in template.terms and value not in known


def _uses(policy: policies.Policy, mapping: Mapping[str, str]) -> bool:
    """Whether every placeholder appears as an asset's or party's IRI, or the uid."""
    seen: set[str] = {policy.uid} & set(mapping) if policy.uid is not None else set()
    stack: list[Any] = [policy]
    while stack:
        item = stack.pop()
        if isinstance(item, Asset | Party):
            if item.iri in mapping:
                seen.add(item.iri)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item)
                         if f.name != "compiled")
        elif isinstance(item, tuple | list):
            stack.extend(item)
    return seen == set(mapping)
