"""EDC management API v3 JSON-LD: reading request bodies, writing responses, errors.

Requests are expanded with the JSON-LD processor (offline contexts only), so a client
may write ``name``, ``edc:name`` or the full IRI — whatever its ``@context`` says; a body
without ``@context`` is read with EDC's default (``@vocab`` = the EDC namespace). Bodies
of a shape seen before are expanded from a cache of the processor's results with their
strings substituted (:mod:`policies.jsonld_templates`; the same result, without
processing the contexts again). The
expanded form is then simplified to plain JSON keyed by EDC local names. Responses are
written directly in compact form under :data:`RESPONSE_CONTEXT` (``@vocab`` EDC, the
``edc:``/``odrl:``/``dspace:`` prefixes), which is what EDC itself answers. Errors are
``application/problem+json`` (our standard) with an ``errors`` array of EDC's
``{message, type, path, invalidValue}`` objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

import policies
from connectors.dsp.definitions import EDC_NS, Criterion
from connectors.dsp.errors import DspError
from connectors.dsp.vocabulary import DCAT_NS, DCT_NS, DSP_ODRL_PROFILE_URL, DSPACE_NS, ODRL_NS
from connectors.http.problem import ProblemError
from policies import jsonld_templates

MANAGEMENT_CONTEXT_URL = "https://w3id.org/edc/connector/management/v0.0.1"
#: Our own management context document (registered with policies.jsonld at start-up).
MANAGEMENT_CONTEXT: dict[str, Any] = {
    "@context": {
        "@version": 1.1,
        "@vocab": EDC_NS,
        "edc": EDC_NS,
        "odrl": ODRL_NS,
        "dspace": DSPACE_NS,
        "dcat": DCAT_NS,
        "dct": DCT_NS,
        "xsd": "http://www.w3.org/2001/XMLSchema#",
    }
}
RESPONSE_CONTEXT: dict[str, str] = {
    "@vocab": EDC_NS,
    "edc": EDC_NS,
    "odrl": ODRL_NS,
    "dspace": DSPACE_NS,
}
DEFAULT_REQUEST_CONTEXT: dict[str, str] = {**RESPONSE_CONTEXT}
#: How EDC's management API shows a provider's catalog: DCAT, ODRL and DSP terms prefixed.
CATALOG_CONTEXT: dict[str, str] = {**RESPONSE_CONTEXT, "dcat": DCAT_NS, "dct": DCT_NS}
MAX_QUERY_LIMIT = 1000


def register_contexts() -> None:
    """Make the management context resolvable offline (idempotent)."""
    policies.jsonld.register_context(MANAGEMENT_CONTEXT_URL, MANAGEMENT_CONTEXT)


def bad_request(message: str, *, path: str | None = None, invalid: Any = None,
                reasons: Sequence[str] = ()) -> NoReturn:
    """Raise a 400 problem; ``errors`` lists every reason in EDC's error shape."""
    msgs = list(reasons) or [message]
    errors = [{"message": r, "type": "InvalidRequest", "path": path, "invalidValue": invalid}
              for r in msgs]
    raise ProblemError(400, "Bad Request", message if not reasons else
                       f"{message}: {'; '.join(reasons)}", errors=errors)


def not_found(what: str, ident: str) -> NoReturn:
    raise ProblemError(404, "Not Found", f"{what} {ident!r} does not exist",
                       errors=[{"message": f"Object of type {what} with ID={ident} was not found",
                                "type": "ObjectNotFound", "path": None, "invalidValue": ident}])


def conflict(message: str, ident: str | None = None) -> NoReturn:
    raise ProblemError(409, "Conflict", message,
                       errors=[{"message": message, "type": "ObjectConflict", "path": None,
                                "invalidValue": ident}])


def from_dsp_error(err: DspError) -> NoReturn:
    """A protocol refusal on a management call (unknown process, invalid transition...)."""
    title = {404: "Not Found", 409: "Conflict"}.get(err.status, "Bad Request")
    raise ProblemError(err.status, title, "; ".join(err.reasons), code=err.code,
                       errors=[{"message": r, "type": err.code, "path": None,
                                "invalidValue": None} for r in err.reasons])


def local(iri: str) -> str:
    """``https://w3id.org/edc/v0.0.1/ns/name`` -> ``name``; other IRIs stay whole."""
    return iri[len(EDC_NS):] if iri.startswith(EDC_NS) else iri


def simplify(value: Any) -> Any:
    """Expanded JSON-LD -> plain JSON keyed by EDC local names (one-element lists unwrapped)."""
    if isinstance(value, list):
        items = [simplify(v) for v in value]
        return items[0] if len(items) == 1 else items
    if not isinstance(value, Mapping):
        return value
    if "@value" in value:
        return value["@value"]
    if "@list" in value:
        return [simplify(v) for v in value["@list"]]
    if set(value) == {"@id"}:
        return value["@id"]
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "@type":
            types = [local(t) for t in (item if isinstance(item, list) else [item])]
            out["@type"] = types[0] if len(types) == 1 else types
        elif key.startswith("@"):
            out[key] = item
        else:
            out[local(key)] = simplify(item)
    return out


def expand_body(body: Any) -> dict[str, Any]:
    """The top node of a request body, expanded (EDC default context when none is given)."""
    if not isinstance(body, Mapping):
        bad_request("the body must be a JSON object")
    doc = dict(body)
    doc.setdefault("@context", DEFAULT_REQUEST_CONTEXT)
    try:
        expanded = jsonld_templates.expand(doc)
    except policies.JsonLdError as exc:
        bad_request(f"the body is not readable JSON-LD: {exc}", path="@context",
                    invalid=exc.url)
    if not expanded:
        return {}  # nothing but a context: an empty object
    if len(expanded) != 1 or not isinstance(expanded[0], dict):
        bad_request("the body must describe exactly one object")
    return expanded[0]


def read(body: Any, expected_type: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(simplified, expanded)`` of a request body; checks ``@type`` when it is given."""
    expanded = expand_body(body)
    simple = simplify(expanded)
    if expected_type is not None and "@type" in simple:
        types = simple["@type"] if isinstance(simple["@type"], list) else [simple["@type"]]
        if expected_type not in types:
            bad_request(f"expected @type {expected_type}, got {simple['@type']}", path="@type",
                        invalid=simple["@type"])
    return simple, expanded


def expanded_member(expanded: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The first node of property ``name`` (EDC namespace) of an expanded node."""
    values = expanded.get(EDC_NS + name)
    if not values:
        return None
    first = values[0] if isinstance(values, list) else values
    return first if isinstance(first, dict) else None


def policy_from_expanded(node: Mapping[str, Any]) -> dict[str, Any]:
    """An expanded ODRL policy node -> compact DSP ODRL profile terms (how the store keeps
    policies: ``permission``, ``action``, ``constraint``...)."""
    try:
        compacted = jsonld_templates.compact(dict(node), [DSP_ODRL_PROFILE_URL])
    except policies.JsonLdError as exc:
        bad_request(f"the policy is not readable JSON-LD: {exc}", path="policy")
    ctx = compacted.pop("@context", None)
    if ctx not in (None, DSP_ODRL_PROFILE_URL, [DSP_ODRL_PROFILE_URL]):
        compacted["@context"] = ctx
    for key in ("permission", "prohibition", "obligation"):
        value = compacted.get(key)
        if isinstance(value, dict):
            compacted[key] = [value]
    return compacted


def policy_json(policy: Mapping[str, Any]) -> dict[str, Any]:
    """A stored policy as JSON-LD readable on its own (its context embedded)."""
    doc = {k: v for k, v in policy.items() if k != "@context"}
    embedded = policy.get("@context")
    extra = [] if embedded is None else embedded if isinstance(embedded, list) else [embedded]
    doc["@context"] = [DSP_ODRL_PROFILE_URL, *extra] if extra else DSP_ODRL_PROFILE_URL
    return doc


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def id_response(ident: str, created: datetime | None) -> dict[str, Any]:
    """EDC's IdResponse for a creation."""
    return {"@context": RESPONSE_CONTEXT, "@type": "IdResponse", "@id": ident,
            "createdAt": epoch_ms(created)}


def catalog_view(doc: Any) -> dict[str, Any]:
    """A provider's DSP catalog or dataset as EDC's management API answers it.

    The provider's answer is compacted with DSP 2025-1's own terms (``dataset``,
    ``hasPolicy``); EDC clients read ``dcat:dataset``, ``odrl:hasPolicy``,
    ``dcat:distribution``, so it is re-compacted with EDC's namespaces (same graph).
    """
    try:
        return policies.jsonld.compact(doc, CATALOG_CONTEXT)
    except policies.jsonld.JsonLdError as exc:
        raise ProblemError(502, "Bad Gateway",
                           f"the counter-party's catalog is not valid JSON-LD: {exc}") from None


def with_context(doc: dict[str, Any]) -> dict[str, Any]:
    return {"@context": RESPONSE_CONTEXT, **doc}


# ---------------------------------------------------------------------------- QuerySpec


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def criteria(value: Any, path: str) -> tuple[Criterion, ...]:
    """EDC criteria (``operandLeft``/``operator``/``operandRight``) from a simplified body."""
    out = []
    for i, c in enumerate(as_list(value)):
        if not isinstance(c, Mapping):
            bad_request("a criterion must be an object", path=f"{path}[{i}]", invalid=c)
        doc = dict(c)
        if str(doc.get("operator", "")).lower() == "in":
            doc["operandRight"] = as_list(doc.get("operandRight"))
        try:
            out.append(Criterion.from_json(doc))
        except DspError as err:
            bad_request("invalid criterion", path=f"{path}[{i}]", invalid=c,
                        reasons=err.reasons)
    return tuple(out)


class QuerySpec:
    """``offset``, ``limit``, ``filterExpression``, ``sortField``/``sortOrder`` of a query."""

    def __init__(self, body: Any) -> None:
        if body is None or body == {} or body == b"":
            simple: dict[str, Any] = {}
        else:
            simple, _ = read(body)
        try:
            self.offset = int(simple.get("offset", 0))
            self.limit = int(simple.get("limit", 50))
        except (TypeError, ValueError):
            bad_request("offset and limit must be integers", path="offset")
        if self.offset < 0 or not 0 < self.limit <= MAX_QUERY_LIMIT:
            bad_request(f"offset must be >= 0 and limit between 1 and {MAX_QUERY_LIMIT}",
                        path="limit", invalid=self.limit)
        self.filters = criteria(simple.get("filterExpression"), "filterExpression")
        self.sort_field = simple.get("sortField")
        self.descending = str(simple.get("sortOrder", "ASC")).upper() == "DESC"

    def apply(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Filter, sort and page response documents (for entities the store cannot query)."""
        selected = [d for d in docs if all(_matches(c, d) for c in self.filters)]
        if isinstance(self.sort_field, str):
            key = local(self.sort_field)
            selected.sort(key=lambda d: str(d.get(key, "")), reverse=self.descending)
        return selected[self.offset:self.offset + self.limit]


def _matches(c: Criterion, doc: Mapping[str, Any]) -> bool:
    from connectors.dsp.definitions import Operator, like_matches

    left = local(c.operand_left)
    value: Any = doc
    for part in left.split("."):
        value = value.get(local(part)) if isinstance(value, Mapping) else None
    if left in ("id", "@id"):
        value = doc.get("@id")
    if value is None or isinstance(value, Mapping | list):
        return False
    text = str(value)
    if c.operator is Operator.EQ:
        return text == c.operand_right
    if c.operator is Operator.NEQ:
        return text != c.operand_right
    if c.operator is Operator.IN:
        return text in c.operand_right
    return like_matches(text, c.operand_right)
