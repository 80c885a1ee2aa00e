"""DCAT documents of the catalog protocol: requests, Catalog, Dataset, Distribution, DataService.

Building is by plain dict construction (no JSON-LD processing at request time) so a
page of a 100,000-asset catalog costs only what it has to copy. Parsing validates the
shape a consumer relies on: dataset ids, offers (``hasPolicy``) and distributions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from connectors.dsp import validation as v
from connectors.dsp.errors import InvalidMessageError
from connectors.dsp.message_base import Json, Message, _head
from connectors.dsp.vocabulary import DSP_CONTEXT, MessageType, OdrlType

# Keys the models own; anything else on a Catalog/Dataset is kept as free properties
# (dct:title, dct:description, keywords...).
_DATASET_KEYS = frozenset({"@context", "@id", "@type", "hasPolicy", "distribution"})
_CATALOG_KEYS = _DATASET_KEYS | {"participantId", "dataset", "catalog", "service"}


@dataclass(frozen=True, slots=True)
class CatalogRequestMessage(Message):
    """Consumer -> provider: give me your catalog (``filter`` is implementation specific)."""

    TYPE: ClassVar[MessageType] = MessageType.CATALOG_REQUEST
    filter: tuple[Any, ...] = ()

    def to_json(self) -> Json:
        doc = _head(self.TYPE)
        doc["filter"] = list(self.filter)
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        doc = cls._open(doc)
        return cls(filter=tuple(v.optional_list(doc, "filter", cls.TYPE.value) or ()))


@dataclass(frozen=True, slots=True)
class DatasetRequestMessage(Message):
    """Consumer -> provider: give me one dataset."""

    TYPE: ClassVar[MessageType] = MessageType.DATASET_REQUEST
    dataset: str

    def to_json(self) -> Json:
        doc = _head(self.TYPE)
        doc["dataset"] = self.dataset
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        doc = cls._open(doc)
        return cls(dataset=v.require_str(doc, "dataset", cls.TYPE.value))


@dataclass(frozen=True, slots=True)
class DataService:
    """A DSP endpoint serving datasets (``endpointURL`` is the provider's protocol URL)."""

    id: str
    endpoint_url: str
    endpoint_description: str | None = None

    def to_json(self) -> Json:
        doc: Json = {
            "@id": self.id,
            "@type": MessageType.DATA_SERVICE.value,
            "endpointURL": self.endpoint_url,
        }
        if self.endpoint_description is not None:
            doc["endpointDescription"] = self.endpoint_description
        return doc

    @classmethod
    def from_json(cls, doc: Any, what: str = "DataService") -> DataService:
        doc = v.require_object(doc, what)
        if v.compact_type(doc.get("@type")) != MessageType.DATA_SERVICE:
            raise InvalidMessageError(f"{what}.@type must be DataService")
        return cls(
            id=v.require_str(doc, "@id", what),
            endpoint_url=v.require_str(doc, "endpointURL", what),
            endpoint_description=v.optional_str(doc, "endpointDescription", what),
        )


@dataclass(frozen=True, slots=True)
class Distribution:
    """How a dataset is delivered: a format (e.g. ``HttpData-PULL``) through a data service."""

    format: str
    access_service: str | DataService

    def to_json(self) -> Json:
        svc = self.access_service
        return {
            "@type": MessageType.DISTRIBUTION.value,
            "format": self.format,
            "accessService": svc if isinstance(svc, str) else svc.to_json(),
        }

    @classmethod
    def from_json(cls, doc: Any, what: str = "Distribution") -> Distribution:
        doc = v.require_object(doc, what)
        svc = doc.get("accessService")
        if isinstance(svc, Mapping) and set(svc) == {"@id"}:
            svc = svc["@id"]
        if isinstance(svc, Mapping):
            access: str | DataService = DataService.from_json(svc, f"{what}.accessService")
        elif isinstance(svc, str) and svc:
            access = svc
        else:
            raise InvalidMessageError(f"{what}.accessService must be an id or a DataService")
        return cls(format=v.require_str(doc, "format", what), access_service=access)


def _check_offers(
    doc: Mapping[str, Any], what: str, *, required: bool, extras: Sequence[Any] = ()
) -> tuple[Json, ...]:
    offers = v.optional_list(doc, "hasPolicy", what)
    if not offers:
        if required:
            raise InvalidMessageError(f"{what}.hasPolicy must list at least one offer")
        return ()
    for i, offer in enumerate(offers):
        # Catalog offers must not name a target: the dataset they hang on is the target.
        v.check_policy(
            offer,
            f"{what}.hasPolicy[{i}]",
            odrl_type=OdrlType.OFFER,
            require_target=False,
            forbid_target=True,
        )
    return tuple(v.with_context(o, list(extras)) for o in offers)


def _distributions(doc: Mapping[str, Any], what: str) -> tuple[Distribution, ...]:
    return tuple(
        Distribution.from_json(d, f"{what}.distribution[{i}]")
        for i, d in enumerate(v.non_empty_list(doc, "distribution", what))
    )


@dataclass(frozen=True, slots=True)
class Dataset(Message):
    """A dataset with its offers; as a root document (dataset request answer) it gets @context."""

    TYPE: ClassVar[MessageType] = MessageType.DATASET
    id: str
    offers: tuple[Json, ...]
    distributions: tuple[Distribution, ...]
    properties: Json = field(default_factory=dict)

    def to_json(self, *, root: bool = True) -> Json:
        doc: Json = {"@context": list(DSP_CONTEXT)} if root else {}
        doc["@id"] = self.id
        doc["@type"] = self.TYPE.value
        doc.update(self.properties)
        doc["hasPolicy"] = [dict(o) for o in self.offers]
        doc["distribution"] = [d.to_json() for d in self.distributions]
        return doc

    @classmethod
    def from_json(
        cls, doc: Any, *, root: bool = True, what: str = "Dataset", extras: Sequence[Any] = ()
    ) -> Self:
        doc = v.require_object(doc, what)
        v.check_type(doc, cls.TYPE.value)
        if root:
            v.check_context(doc, what)
            extras = v.extra_contexts(doc)
        dists = _distributions(doc, what)
        if not dists:
            raise InvalidMessageError(f"{what}.distribution must list at least one distribution")
        return cls(
            id=v.require_str(doc, "@id", what),
            offers=_check_offers(doc, what, required=True, extras=list(extras)),
            distributions=dists,
            properties={k: x for k, x in doc.items() if k not in _DATASET_KEYS},
        )


@dataclass(frozen=True, slots=True)
class Catalog(Message):
    """A DCAT catalog: datasets, data services, nested catalogs; the root names the participant."""

    TYPE: ClassVar[MessageType] = MessageType.CATALOG
    id: str
    participant_id: str | None
    datasets: tuple[Dataset, ...] = ()
    services: tuple[DataService, ...] = ()
    catalogs: tuple[Catalog, ...] = ()
    distributions: tuple[Distribution, ...] = ()
    properties: Json = field(default_factory=dict)

    def to_json(self, *, root: bool = True) -> Json:
        doc: Json = {"@context": list(DSP_CONTEXT)} if root else {}
        doc["@id"] = self.id
        doc["@type"] = self.TYPE.value
        if self.participant_id is not None:
            doc["participantId"] = self.participant_id
        doc.update(self.properties)
        if self.services:
            doc["service"] = [s.to_json() for s in self.services]
        if self.datasets:
            doc["dataset"] = [d.to_json(root=False) for d in self.datasets]
        if self.catalogs:
            doc["catalog"] = [c.to_json(root=False) for c in self.catalogs]
        if self.distributions:
            doc["distribution"] = [d.to_json() for d in self.distributions]
        return doc

    @classmethod
    def from_json(
        cls, doc: Any, *, root: bool = True, what: str = "Catalog", extras: Sequence[Any] = ()
    ) -> Self:
        doc = v.require_object(doc, what)
        v.check_type(doc, cls.TYPE.value)
        if root:
            v.check_context(doc, what)
            extras = v.extra_contexts(doc)
        if "hasPolicy" in doc:
            raise InvalidMessageError(
                f"{what} must not carry hasPolicy (offers belong to datasets)"
            )
        participant = (
            v.require_str(doc, "participantId", what)
            if root
            else v.optional_str(doc, "participantId", what)
        )
        datasets = tuple(
            Dataset.from_json(d, root=False, what=f"{what}.dataset[{i}]", extras=list(extras))
            for i, d in enumerate(v.non_empty_list(doc, "dataset", what))
        )
        services = tuple(
            DataService.from_json(s, f"{what}.service[{i}]")
            for i, s in enumerate(v.non_empty_list(doc, "service", what))
        )
        catalogs = tuple(
            cls.from_json(c, root=False, what=f"{what}.catalog[{i}]", extras=list(extras))
            for i, c in enumerate(v.non_empty_list(doc, "catalog", what))
        )
        return cls(
            id=v.require_str(doc, "@id", what),
            participant_id=participant,
            datasets=datasets,
            services=services,
            catalogs=catalogs,
            distributions=_distributions(doc, what),
            properties={k: x for k, x in doc.items() if k not in _CATALOG_KEYS},
        )


CATALOG_CLASSES: dict[str, type[Message]] = {
    c.TYPE.value: c for c in (CatalogRequestMessage, DatasetRequestMessage, Dataset, Catalog)
}
