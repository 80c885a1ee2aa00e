"""JSON-LD expansion and compaction of documents of a shape seen before, without pyld.

Processing a context is most of the cost of JSON-LD (the W3C ODRL context alone defines
some 200 terms), and pyld's own cache of processed contexts is not safe to share across
calls (see :func:`policies.jsonld._options`). Request bodies of one kind differ only in a
few strings: ids, asset ids, party ids, addresses. :func:`expand` and :func:`compact` here
replace each *plain* string value of the input by a placeholder, process that skeleton
once with pyld, and afterwards substitute the strings into the cached result.

A string is plain when JSON-LD reads it as itself wherever it stands, as an IRI or as a
literal: no whitespace or characters IRIs cannot hold, not keyword-like (``@...``), not a
blank node, not a term or prefix any known context defines (registered documents, the
contexts inside the input, the compaction context), and not an absolute IRI whose scheme
any of those contexts uses (so no compact-IRI or vocabulary mapping can apply to it, in
either direction). Other strings stay in the skeleton as they are (they are part of the
cache key), as do keys, ``@context`` values and every keyword's value but ``@id``'s and
``@value``'s.

A placeholder is trusted only where pyld put it back verbatim as the whole value of an
``@id`` or ``@value`` (expansion), or as a whole string value (compaction). A placeholder
found anywhere else (a type, a key, inside another string, rewritten against ``@vocab``
or ``@base``) is kept as a literal in the skeleton of that shape instead, and the shape is
processed again, so every substitution reproduces what pyld gives for the real document
(``tests/policies/test_jsonld_templates.py`` compares the two over the specifications'
examples).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from policies import jsonld

CACHE_SIZE = 256
_NONCE = "c1d7e3a5"
_PLACEHOLDER = re.compile(r"^autospace-ph-(\d+)-" + _NONCE + "$")
_PLAIN = re.compile(r"^[^\s@\"<>\\^`{|}][^\s\"<>\\^`{|}]*$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_VALUE_KEYS = frozenset({"@id", "@value"})
# Keywords whose values hold nodes and values to walk into (every other keyword's value,
# @type's above all, stays literal in the skeleton).
_STRUCTURAL_KEYS = frozenset({"@graph", "@list", "@set", "@included", "@reverse", "@nest"})


def _placeholder(i: int) -> str:
    return f"autospace-ph-{i}-{_NONCE}"


class _Shape:
    """A skeleton being built: the strings taken out and the names the contexts define."""

    def __init__(self, blocked: frozenset[str], keep: frozenset[int]) -> None:
        self.blocked = blocked  # terms and IRI schemes of the known contexts
        self.keep = keep  # indices of plain strings to keep literal (untrusted positions)
        self.values: list[str] = []
        self.seen = 0
        self.foreign = False  # the input itself contains the placeholder nonce

    def plain(self, text: str) -> bool:
        if not _PLAIN.match(text) or text.startswith("_:") or text in self.blocked:
            return False
        scheme = _SCHEME.match(text)
        if scheme is not None:
            return scheme.group(1) not in self.blocked
        return ":" not in text

    def string(self, text: str) -> str:
        if _NONCE in text:
            self.foreign = True
        if not self.plain(text):
            return text
        index = self.seen
        self.seen += 1
        if index in self.keep:
            return text
        self.values.append(text)
        return _placeholder(len(self.values) - 1)


def _names(context: Any) -> set[str]:
    """Terms of a context value and the schemes of the IRIs it mentions."""
    found = jsonld.context_terms(context)
    stack = [context]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            scheme = _SCHEME.match(item)
            if scheme is not None:
                found.add(scheme.group(1))
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _contexts(doc: Any) -> list[Any]:
    out: list[Any] = []
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if key == "@context":
                    out.append(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return out


def _skeleton(doc: Any, shape: _Shape, *, ids_and_values_only: bool) -> Any:
    """``doc`` with plain strings replaced. With ``ids_and_values_only`` (an expanded
    document), only the strings of ``@id`` and ``@value`` are candidates."""

    def walk(item: Any, key: str | None) -> Any:
        if isinstance(item, Mapping):
            out = {}
            for k, v in item.items():
                if _NONCE in k:
                    shape.foreign = True
                if k == "@context" or (
                    k.startswith("@") and k not in _VALUE_KEYS and k not in _STRUCTURAL_KEYS
                ):
                    out[k] = _literal(v)
                else:
                    out[k] = walk(v, k)
            return out
        if isinstance(item, list):
            return [walk(v, key) for v in item]
        if isinstance(item, str):
            if ids_and_values_only and key not in _VALUE_KEYS:
                return _literal(item)
            return shape.string(item)
        return item

    def _literal(item: Any) -> Any:
        if _NONCE in json.dumps(item, ensure_ascii=False):
            shape.foreign = True
        return item

    return walk(doc, None)


def _untrusted(result: Any, *, expanded: bool) -> set[int]:
    """Indices of placeholders found in a pyld result anywhere but where they are trusted."""
    good: set[int] = set()
    bad: set[int] = set()

    def note(text: str, trusted: bool) -> None:
        m = _PLACEHOLDER.match(text)
        if m is not None:
            (good if trusted else bad).add(int(m.group(1)))
        elif _NONCE in text:  # inside another string: which one is unknown; all are unsafe
            bad.update(int(x) for x in re.findall(r"autospace-ph-(\d+)-" + _NONCE, text))

    stack: list[tuple[Any, str | None]] = [(result, None)]
    while stack:
        item, key = stack.pop()
        if isinstance(item, Mapping):
            for k, v in item.items():
                note(k, False)
                stack.append((v, k))
        elif isinstance(item, list):
            stack.extend((v, key) for v in item)
        elif isinstance(item, str):
            trusted = key in _VALUE_KEYS if expanded else key is not None and key != "@type"
            note(item, trusted)
    return bad


def _substitute(template: Any, values: list[str]) -> Any:
    if isinstance(template, dict):
        return {k: _substitute(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_substitute(v, values) for v in template]
    if isinstance(template, str):
        m = _PLACEHOLDER.match(template)
        return values[int(m.group(1))] if m is not None else template
    return template


class TemplateCache:
    """Results of one pyld operation by the skeleton of its input (LRU, thread-safe)."""

    def __init__(self, run: Callable[[Any], Any], *, expanded_input: bool,
                 expanded_output: bool, size: int = CACHE_SIZE) -> None:
        self.run = run
        self.expanded_input = expanded_input
        self.expanded_output = expanded_output
        self.size = size
        self._keep: OrderedDict[str, frozenset[int] | None] = OrderedDict()
        self._results: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __call__(self, doc: Any, extra_contexts: tuple[Any, ...] = ()) -> Any:
        blocked = jsonld.defined_terms() | _known_schemes()
        for context in (*_contexts(doc), *extra_contexts):
            blocked = blocked | _names(context)
        first = _Shape(blocked, frozenset())
        skeleton = _skeleton(doc, first, ids_and_values_only=self.expanded_input)
        if first.foreign or not first.values:
            return self.run(doc)
        key1 = _key(skeleton, extra_contexts)
        with self._lock:
            keep = self._keep.get(key1, frozenset())
            if key1 in self._keep:
                self._keep.move_to_end(key1)
        if keep is None:  # this shape cannot be templated
            return self.run(doc)
        shape, key2 = first, key1
        if keep:
            shape = _Shape(blocked, keep)
            skeleton = _skeleton(doc, shape, ids_and_values_only=self.expanded_input)
            key2 = _key(skeleton, extra_contexts)
        with self._lock:
            result = self._results.get(key2)
            if result is not None:
                self._results.move_to_end(key2)
                self.hits += 1
        if result is not None:
            return _substitute(result, shape.values)
        self.misses += 1
        return self._fill(doc, key1, keep, blocked, extra_contexts)

    def _fill(self, doc: Any, key1: str, keep: frozenset[int], blocked: frozenset[str],
              extra_contexts: tuple[Any, ...]) -> Any:
        """Process the skeleton; untrusted placeholders are kept literal and it is tried
        again (at most a few times); the real document's own result is returned."""
        for _ in range(4):
            shape = _Shape(blocked, keep)
            skeleton = _skeleton(doc, shape, ids_and_values_only=self.expanded_input)
            if not shape.values:
                break
            try:
                result = self.run(skeleton)
            except jsonld.JsonLdError:
                break  # the real document decides (and says why)
            bad = _untrusted(result, expanded=self.expanded_output)
            if not bad:
                self._store(key1, keep, _key(skeleton, extra_contexts), result)
                return _substitute(result, shape.values)
            # indices of this round's values -> positions among all plain strings
            positions = [i for i in range(shape.seen) if i not in keep]
            keep = keep | {positions[i] for i in bad}
        with self._lock:
            self._keep[key1] = None
            self._trim(self._keep)
        return self.run(doc)

    def _store(self, key1: str, keep: frozenset[int], key2: str, result: Any) -> None:
        with self._lock:
            self._keep[key1] = keep
            self._results[key2] = result
            self._trim(self._keep)
            self._trim(self._results)

    def _trim(self, cache: OrderedDict[str, Any]) -> None:
        while len(cache) > self.size:
            cache.popitem(last=False)


def _key(skeleton: Any, extra: tuple[Any, ...]) -> str:
    return json.dumps([skeleton, list(extra)], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


_schemes: list[frozenset[str]] = []


def _known_schemes() -> frozenset[str]:
    """IRI schemes and prefixes the registered context documents use (memoised until the
    registry changes, as :func:`policies.jsonld.defined_terms` is)."""
    terms = jsonld.defined_terms()
    if not _schemes or _schemes[0] is not terms:
        names: set[str] = set()
        for doc in jsonld.registered_contexts().values():
            names |= _names(doc)
        _schemes[:] = [terms, frozenset(names)]
    return _schemes[1]


_expand = TemplateCache(jsonld.expand, expanded_input=False, expanded_output=True)


def expand(doc: Any) -> list:
    """:func:`policies.jsonld.expand`, from the cache when a document of this shape was
    expanded before (raises :class:`~policies.jsonld.JsonLdError` as it does)."""
    if not isinstance(doc, dict | list):
        return jsonld.expand(doc)
    jsonld._check_depth(doc)
    return _expand(doc)


_compactors: dict[str, TemplateCache] = {}
_compactors_lock = threading.Lock()


def compact(doc: Any, context: Any) -> dict:
    """:func:`policies.jsonld.compact` of an *expanded* document, from the cache when one
    of this shape was compacted with ``context`` before."""
    if not isinstance(doc, dict | list):
        return jsonld.compact(doc, context)
    jsonld._check_depth(doc)
    name = json.dumps(context, sort_keys=True)
    with _compactors_lock:
        cache = _compactors.get(name)
        if cache is None:
            if len(_compactors) >= 32:
                _compactors.clear()
            cache = TemplateCache(lambda d, c=context: jsonld.compact(d, c),
                                  expanded_input=True, expanded_output=False)
            _compactors[name] = cache
    return cache(doc, (context,))
