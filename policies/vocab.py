"""ODRL 2.2 vocabulary terms the engine understands (one module per vocabulary).

The action hierarchy is ``odrl:includedIn`` from the ODRL 2.2 vocabulary: an action
permitted implies every action included in it may be performed (``read`` is included in
``use``). Deprecated actions map to their ``skos:exactMatch`` replacement.
"""

from __future__ import annotations

ODRL = "http://www.w3.org/ns/odrl/2/"
CC = "http://creativecommons.org/ns#"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF_VALUE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#value"
RDF_TYPE = "@type"
CX = "https://w3id.org/catenax/2025/9/policy/"
CX_LEGACY = "https://w3id.org/catenax/policy/"
CN = "https://w3id.org/autospace/cn-auto/"
AUTOSPACE = "https://w3id.org/autospace/policy/"

# Policy subclasses and rule kinds.
POLICY_TYPES = {
    ODRL + t: t
    for t in ("Policy", "Set", "Offer", "Agreement", "Request", "Ticket", "Assertion", "Privacy")
}
RULE_KEYS = {
    "permission": ODRL + "permission",
    "prohibition": ODRL + "prohibition",
    "obligation": ODRL + "obligation",
}

# Operators (ODRL 2.2 section 4 of the vocabulary).
OPERATORS = frozenset(
    ODRL + o
    for o in (
        "eq",
        "neq",
        "lt",
        "lteq",
        "gt",
        "gteq",
        "isA",
        "hasPart",
        "isPartOf",
        "isAllOf",
        "isAnyOf",
        "isNoneOf",
    )
)
LOGICAL_OPERATORS = {ODRL + o: o for o in ("and", "or", "xone", "andSequence")}
CONFLICT_TERMS = {ODRL + t: t for t in ("perm", "prohibit", "invalid")}

# action -> the action it is included in (odrl:includedIn), from the ODRL 2.2 vocabulary.
_INCLUDED_IN_USE = [
    "acceptTracking",
    "aggregate",
    "annotate",
    "anonymize",
    "archive",
    "attribute",
    "compensate",
    "concurrentUse",
    "delete",
    "derive",
    "digitize",
    "distribute",
    "ensureExclusivity",
    "execute",
    "grantUse",
    "include",
    "index",
    "inform",
    "install",
    "modify",
    "move",
    "nextPolicy",
    "obtainConsent",
    "play",
    "present",
    "print",
    "read",
    "reproduce",
    "reviewPolicy",
    "stream",
    "synchronize",
    "textToSpeech",
    "transform",
    "translate",
    "uninstall",
    "watermark",
]
INCLUDED_IN: dict[str, str] = {ODRL + a: ODRL + "use" for a in _INCLUDED_IN_USE}
INCLUDED_IN.update(
    {
        ODRL + "display": ODRL + "play",
        ODRL + "extract": ODRL + "reproduce",
        ODRL + "give": ODRL + "transfer",
        ODRL + "sell": ODRL + "transfer",
    }
)
# Our own actions: federated computation is a use that never moves the data; logging is a duty.
INCLUDED_IN[CN + "federatedCompute"] = ODRL + "use"
INCLUDED_IN.update(
    {
        CC + c: ODRL + "use"
        for c in (
            "Attribution",
            "CommercialUse",
            "DerivativeWorks",
            "Distribution",
            "Notice",
            "Reproduction",
            "ShareAlike",
            "Sharing",
            "SourceCode",
        )
    }
)

# Deprecated ODRL actions -> their replacement (skos:exactMatch in the vocabulary).
DEPRECATED_ACTIONS: dict[str, str] = {
    ODRL + "append": ODRL + "modify",
    ODRL + "appendTo": ODRL + "modify",
    ODRL + "write": ODRL + "modify",
    ODRL + "writeTo": ODRL + "modify",
    ODRL + "copy": ODRL + "reproduce",
    ODRL + "export": ODRL + "transform",
    ODRL + "license": ODRL + "grantUse",
    ODRL + "pay": ODRL + "compensate",
    ODRL + "attachPolicy": CC + "Notice",
    ODRL + "attachSource": CC + "SourceCode",
    ODRL + "commercialize": CC + "CommercialUse",
    ODRL + "share": CC + "Sharing",
    ODRL + "shareAlike": CC + "ShareAlike",
}

# Older Catena-X documents name actions in the legacy namespace; they mean the same.
ACTION_ALIASES: dict[str, str] = {
    CX_LEGACY + "access": CX + "access",
}


def canonical_action(iri: str) -> str:
    """Map deprecated or aliased action IRIs to the one the hierarchy knows."""
    return DEPRECATED_ACTIONS.get(iri, iri)


def action_ancestors(
    iri: str, limit: int = 16, extra: dict[str, str] | None = None
) -> tuple[str, ...]:
    """Return ``iri`` and every action it is (transitively) included in.

    ``extra`` adds a profile's own actions (action -> the action it is included in).
    """
    out = [canonical_action(iri)]
    while len(out) < limit:
        parent = INCLUDED_IN.get(out[-1]) or (extra.get(out[-1]) if extra else None)
        if parent is None or parent in out:
            break
        out.append(parent)
    return tuple(out)


def short(iri: str) -> str:
    """A readable name for explanations (``odrl:read``, ``cx-policy:Membership``)."""
    for prefix, name in (
        (ODRL, "odrl:"),
        (CX, "cx-policy:"),
        (CN, "cn:"),
        (XSD, "xsd:"),
        (AUTOSPACE, "autospace:"),
    ):
        if iri.startswith(prefix):
            return name + iri[len(prefix) :]
    return iri
