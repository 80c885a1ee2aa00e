"""CatalogError and the ``/.well-known/dspace-version`` document."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from connectors.dsp import validation as v
from connectors.dsp.errors import InvalidMessageError
from connectors.dsp.message_base import Json, Message, _code_reason, _head
from connectors.dsp.vocabulary import (
    BINDING_HTTPS,
    MessageType,
)


@dataclass(frozen=True, slots=True)
class CatalogError(Message):
    """The ERROR answer of the catalog endpoints."""

    TYPE: ClassVar[MessageType] = MessageType.CATALOG_ERROR
    code: str | None = None
    reason: tuple[Any, ...] = ()

    def to_json(self) -> Json:
        return _code_reason(_head(self.TYPE), self.code, self.reason)

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        doc = cls._open(doc)
        t = cls.TYPE.value
        return cls(
            code=v.optional_str(doc, "code", t), reason=v.reason_list(doc, t, non_empty=False)
        )


@dataclass(frozen=True, slots=True)
class ProtocolVersion:
    """One entry of ``/.well-known/dspace-version``."""

    version: str
    path: str
    binding: str = BINDING_HTTPS
    identifier_type: str | None = None
    service_id: str | None = None
    auth: Json | None = None

    def to_json(self) -> Json:
        doc: Json = {"version": self.version, "path": self.path, "binding": self.binding}
        if self.identifier_type is not None:
            doc["identifierType"] = self.identifier_type
        if self.service_id is not None:
            doc["serviceId"] = self.service_id
        if self.auth is not None:
            doc["auth"] = dict(self.auth)
        return doc


@dataclass(frozen=True, slots=True)
class VersionDocument:
    """The body of ``GET /.well-known/dspace-version`` (plain JSON, no @context)."""

    protocol_versions: tuple[ProtocolVersion, ...] = field(default_factory=tuple)

    def to_json(self) -> Json:
        return {"protocolVersions": [p.to_json() for p in self.protocol_versions]}

    @classmethod
    def from_json(cls, doc: Any) -> VersionDocument:
        doc = v.require_object(doc, "version document")
        entries = v.optional_list(doc, "protocolVersions", "VersionResponse")
        if not entries:
            raise InvalidMessageError("VersionResponse.protocolVersions must be a non-empty array")
        out = []
        for i, e in enumerate(entries):
            w = f"protocolVersions[{i}]"
            e = v.require_object(e, w)
            binding = v.require_str(e, "binding", w)
            if binding != BINDING_HTTPS:
                raise InvalidMessageError(f"{w}.binding must be HTTPS")
            auth = e.get("auth")
            if auth is not None:
                auth = v.require_object(auth, f"{w}.auth")
                v.require_str(auth, "protocol", f"{w}.auth")
                v.require_str(auth, "version", f"{w}.auth")
            out.append(
                ProtocolVersion(
                    version=v.require_str(e, "version", w),
                    path=v.require_str(e, "path", w),
                    binding=binding,
                    identifier_type=v.optional_str(e, "identifierType", w),
                    service_id=v.optional_str(e, "serviceId", w),
                    auth=None if auth is None else dict(auth),
                )
            )
        return cls(tuple(out))
