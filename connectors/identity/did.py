"""did:web (W3C CCG did:web method) and did:key for Ed25519, with DID documents.

did:web maps a DID onto an HTTPS URL: the host (a port is written ``%3A``), then
path segments separated by ``:``; no path resolves to ``/.well-known/did.json``,
a path to ``<path>/did.json``. The method requires HTTPS; plain HTTP is allowed
here only for hosts the operator lists (loopback for local data spaces and tests).
did:key (Ed25519, multicodec 0xed01, base58btc) is self-certifying and used by an
authority that has no public URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

from connectors.identity.errors import DidError
from connectors.identity.jwk import okp_jwk, public_key_from_jwk

DID_CONTEXT = "https://www.w3.org/ns/did/v1"
JWS_2020_CONTEXT = "https://w3id.org/security/suites/jws-2020/v1"
DEFAULT_HTTP_HOSTS = ("127.0.0.1", "localhost", "::1")
ED25519_MULTICODEC = b"\xed\x01"  # multicodec table: ed25519-pub
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def did_web_from_url(url: str) -> str:
    """Derive the did:web of a public base URL (``http(s)://host[:port][/path]``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DidError(f"public URL must be http(s)://host[:port][/path], got {url!r}")
    if parts.query or parts.fragment or parts.username:
        raise DidError(f"public URL must not carry query, fragment or user info: {url!r}")
    host = parts.hostname
    if ":" in host:
        raise DidError("did:web cannot name an IPv6 literal host; use a host name")
    authority = host if parts.port is None else f"{host}%3A{parts.port}"
    segments = [quote(s, safe="") for s in parts.path.split("/") if s]
    return ":".join(["did", "web", authority, *segments])


def did_web_base_url(did: str, *, allow_http_hosts: tuple[str, ...] = DEFAULT_HTTP_HOSTS) -> str:
    """Base URL of a did:web (scheme, host, port, path), HTTPS unless the host is allowed HTTP."""
    if not did.startswith("did:web:"):
        raise DidError(f"not a did:web: {did!r}")
    fields = did[len("did:web:") :].split(":")
    if not fields[0] or "/" in did or "?" in did or "#" in did:
        raise DidError(f"malformed did:web: {did!r}")
    authority = unquote(fields[0])
    host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
    scheme = "http" if host in allow_http_hosts else "https"
    path = "".join("/" + quote(unquote(s), safe="") for s in fields[1:])
    return f"{scheme}://{authority}{path}"


def did_web_document_url(
    did: str, *, allow_http_hosts: tuple[str, ...] = DEFAULT_HTTP_HOSTS
) -> str:
    """URL of the DID document of a did:web, per the method's resolution rules."""
    base = did_web_base_url(did, allow_http_hosts=allow_http_hosts)
    has_path = len(did[len("did:web:") :].split(":")) > 1
    return f"{base}/did.json" if has_path else f"{base}/.well-known/did.json"


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, rem = divmod(n, 58)
        out = _B58[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        idx = _B58.find(ch)
        if idx < 0:
            raise DidError(f"invalid base58 character {ch!r}")
        n = n * 58 + idx
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def did_key_from_public_key(public_key: bytes) -> str:
    """did:key of a raw Ed25519 public key (multibase ``z`` + base58btc of 0xed01 || key)."""
    if len(public_key) != 32:
        raise DidError("Ed25519 public key must be 32 bytes")
    return "did:key:z" + _b58encode(ED25519_MULTICODEC + public_key)


def public_key_from_did_key(did: str) -> bytes:
    """Raw Ed25519 public key named by a did:key; ``DidError`` for other key types."""
    if not did.startswith("did:key:z"):
        raise DidError(f"not a base58btc did:key: {did!r}")
    raw = _b58decode(did[len("did:key:z") :])
    if raw[:2] != ED25519_MULTICODEC or len(raw) != 34:
        raise DidError("did:key is not an Ed25519 key")
    return raw[2:]


def did_document(
    did: str,
    public_key: bytes,
    key_id: str,
    *,
    services: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A DID document with one JsonWebKey2020 verification method for ``public_key``."""
    vm_id = f"{did}#{key_id}"
    doc: dict[str, Any] = {
        "@context": [DID_CONTEXT, JWS_2020_CONTEXT],
        "id": did,
        "verificationMethod": [
            {
                "id": vm_id,
                "type": "JsonWebKey2020",
                "controller": did,
                "publicKeyJwk": okp_jwk(public_key),
            }
        ],
        "authentication": [vm_id],
        "assertionMethod": [vm_id],
    }
    if services:
        doc["service"] = services
    return doc


def did_key_document(did: str) -> dict[str, Any]:
    """The DID document a did:key expands to (resolved locally, no network)."""
    public_key = public_key_from_did_key(did)
    return did_document(did, public_key, did[len("did:key:") :])


def verification_key(document: Any, did: str, kid: str | None) -> bytes:
    """Raw public key of the verification method ``kid`` in ``document`` for ``did``.

    ``kid`` may be absolute (``did#frag``) or a fragment; when ``None`` the document
    must hold exactly one method. ``DidError`` if the document does not belong to
    ``did`` or holds no such Ed25519 key.
    """
    if not isinstance(document, dict) or document.get("id") != did:
        found = document.get("id") if isinstance(document, dict) else type(document).__name__
        raise DidError(f"DID document id is {found!r}, expected {did!r}")
    methods = document.get("verificationMethod")
    if not isinstance(methods, list) or not methods:
        raise DidError("DID document has no verificationMethod")
    if kid is None:
        if len(methods) != 1:
            raise DidError("token has no kid and the DID document has several keys")
        chosen = methods[0]
    else:
        want = kid if kid.startswith("did:") else f"{did}#{kid.lstrip('#')}"
        chosen = next(
            (m for m in methods if isinstance(m, dict) and _absolute(m.get("id"), did) == want),
            None,
        )
        if chosen is None:
            raise DidError(f"DID document has no verification method {want!r}")
    if not isinstance(chosen, dict) or chosen.get("controller", did) != did:
        raise DidError("verification method is not controlled by the DID")
    try:
        return public_key_from_jwk(chosen.get("publicKeyJwk"))
    except ValueError as exc:
        raise DidError(f"verification method key: {exc}") from None


def _absolute(vm_id: Any, did: str) -> str | None:
    if not isinstance(vm_id, str):
        return None
    return f"{did}{vm_id}" if vm_id.startswith("#") else vm_id


def service_endpoint(document: dict[str, Any], service_type: str) -> str | None:
    """First ``serviceEndpoint`` (a string) of the given type in a DID document."""
    for svc in document.get("service", []) or []:
        if isinstance(svc, dict) and svc.get("type") == service_type:
            endpoint = svc.get("serviceEndpoint")
            if isinstance(endpoint, str):
                return endpoint
    return None
