"""Offline JSON-LD processing shared by the whole project.

Nothing here touches the network: remote contexts are resolved only from documents
registered in this process (the project ships its own, written from the specifications,
in ``policies/contexts``). An unknown remote context is a :class:`JsonLdError` that names
the URL, so that an operator can see which context a peer used.

Relative ``@id`` values are kept as they are: expansion runs without a base, so
``"@id": "offer-1"`` stays ``offer-1`` instead of being rewritten against a made-up base.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyld import jsonld as _pyld
from pyld.context_resolver import ContextResolver

CONTEXTS_DIR = Path(__file__).with_name("contexts")

ODRL_CONTEXT_URL = "http://www.w3.org/ns/odrl.jsonld"
DSP_CONTEXT_URL = "https://w3id.org/dspace/2025/1/context.jsonld"
DSP_ODRL_PROFILE_URL = "https://w3id.org/dspace/2025/1/odrl-profile.jsonld"
CX_ODRL_CONTEXT_URL = "https://w3id.org/catenax/2025/9/policy/odrl.jsonld"
CX_POLICY_CONTEXT_URL = "https://w3id.org/catenax/2025/9/policy/context.jsonld"

# URL -> file in policies/contexts (our own documents, compared with the specs in tests).
SHIPPED_CONTEXTS: dict[str, str] = {
    ODRL_CONTEXT_URL: "odrl.jsonld",
    "https://www.w3.org/ns/odrl.jsonld": "odrl.jsonld",
    DSP_CONTEXT_URL: "dspace-2025-1.jsonld",
    DSP_ODRL_PROFILE_URL: "odrl-profile.jsonld",
    CX_ODRL_CONTEXT_URL: "odrl-profile.jsonld",
    CX_POLICY_CONTEXT_URL: "cx-policy-2025-9.jsonld",
}

# Bounds on untrusted input (a policy is small; anything bigger is an attack or a mistake).
MAX_DOCUMENT_DEPTH = 100


class JsonLdError(ValueError):
    """A document could not be processed as JSON-LD.

    Attributes:
        url: the remote context URL that is not known offline, when that is the cause.
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


_lock = threading.Lock()
_registry: dict[str, dict[str, Any]] = {}
_terms: list[frozenset[str]] = []  # memo of defined_terms(), cleared by register_context


def context_terms(context: Any) -> set[str]:
    """Every term a context value defines, scoped contexts included (URLs not followed)."""
    found: set[str] = set()
    stack = [context]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, Mapping):
            for key, value in item.items():
                if key == "@context":
                    stack.append(value)
                    continue
                if not key.startswith("@"):
                    found.add(key)
                if isinstance(value, Mapping) and "@context" in value:
                    stack.append(value["@context"])
    return found


def defined_terms() -> frozenset[str]:
    """Every term (and prefix) defined by any registered context document."""
    with _lock:
        if not _terms:
            terms: set[str] = set()
            for doc in _registry.values():
                terms |= context_terms(doc)
            _terms.append(frozenset(terms))
        return _terms[0]


def register_context(url: str, document: dict) -> None:
    """Make ``document`` the offline answer for the remote context ``url``.

    ``document`` is a full context document (``{"@context": {...}}``); a bare context
    object is wrapped. Registering a URL again replaces the earlier document.
    """
    if not isinstance(url, str) or not url:
        raise JsonLdError("context URL must be a non-empty string")
    if not isinstance(document, Mapping):
        raise JsonLdError(f"context document for {url} must be a JSON object")
    doc = dict(document)
    if "@context" not in doc:
        doc = {"@context": doc}
    with _lock:
        _registry[url] = copy.deepcopy(doc)
        _terms.clear()


def registered_contexts() -> dict[str, dict[str, Any]]:
    """Return a copy of every registered context document by URL."""
    with _lock:
        return copy.deepcopy(_registry)


def _load_shipped() -> None:
    for url, name in SHIPPED_CONTEXTS.items():
        with (CONTEXTS_DIR / name).open(encoding="utf-8") as fh:
            _registry[url] = json.load(fh)


_load_shipped()


def _options(**extra: Any) -> dict[str, Any]:
    # A fresh context cache per call: pyld's shared cache of resolved contexts returns wrong
    # results for DSP's type-scoped contexts (@import/@propagate) once other messages were
    # processed (the agreement of a ContractAgreementMessage vanished). Correctness first.
    return {
        "documentLoader": _offline_loader,
        "contextResolver": ContextResolver({}, _offline_loader),
        "base": None,
        **extra,
    }


def _offline_loader(url: str, options: dict | None = None) -> dict[str, Any]:
    doc = _registry.get(url)
    if doc is None:
        raise JsonLdError(f"unknown remote JSON-LD context {url!r} (no network access)", url=url)
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": url,
        "document": copy.deepcopy(doc),
    }


def _check_depth(doc: Any, limit: int = MAX_DOCUMENT_DEPTH) -> None:
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise JsonLdError(f"document nested deeper than {limit} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def _unwrap(exc: BaseException) -> JsonLdError:
    """Find the root cause in pyld's chain of errors and turn it into one clear error."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 32:
        if isinstance(cause, JsonLdError):
            return cause
        details = getattr(cause, "details", None)
        if isinstance(details, dict):
            nested = details.get("cause")
            if isinstance(nested, BaseException):
                cause = nested
                seen += 1
                continue
        nxt = getattr(cause, "cause", None) or cause.__cause__
        if nxt is None or nxt is cause:
            break
        cause = nxt
        seen += 1
    message = str(getattr(cause, "message", None) or cause or exc)
    code = getattr(cause, "code", None)
    return JsonLdError(f"invalid JSON-LD: {message}" + (f" ({code})" if code else ""))


def expand(doc: Any) -> list:
    """Expand ``doc`` with offline contexts only; relative IRIs stay relative.

    Raises:
        JsonLdError: malformed JSON-LD, too deep, or an unknown remote context (named).
    """
    if not isinstance(doc, dict | list):
        raise JsonLdError("a JSON-LD document must be a JSON object or array")
    _check_depth(doc)
    try:
        return _pyld.expand(copy.deepcopy(doc), _options())
    except JsonLdError:
        raise
    except RecursionError as exc:
        raise JsonLdError("document is too deeply nested") from exc
    except Exception as exc:  # pyld raises many types; all become one error family
        raise _unwrap(exc) from exc


def compact(doc: Any, context: Any) -> dict:
    """Compact ``doc`` against ``context`` (a URL, a context object or a list of them).

    Raises:
        JsonLdError: as for :func:`expand`.
    """
    if not isinstance(doc, dict | list):
        raise JsonLdError("a JSON-LD document must be a JSON object or array")
    _check_depth(doc)
    ctx = context.get("@context", context) if isinstance(context, dict) else context
    try:
        return _pyld.compact(
            copy.deepcopy(doc),
            {"@context": copy.deepcopy(ctx)},
            _options(compactToRelative=False),
        )
    except JsonLdError:
        raise
    except RecursionError as exc:
        raise JsonLdError("document is too deeply nested") from exc
    except Exception as exc:
        raise _unwrap(exc) from exc
