"""The provider's catalog: DCAT datasets with the ODRL offers a caller may see.

Built for large catalogs: access policies are evaluated once per request per distinct
policy (not per asset), the visible contract definitions' asset selectors become one SQL
``WHERE`` so paging happens in the database, and offers are copied from terms prepared
once per contract definition; no JSON-LD processing happens at request time.

Offer ids encode (contract definition, asset), so a ContractRequestMessage naming one can
be resolved back (:meth:`CatalogService.resolve_offer`) and re-checked against the
caller's access policy.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import false, func, or_, select

from connectors import tables as t
from connectors.dsp import rows
from connectors.dsp.catalog_messages import Catalog, DataService, Dataset, Distribution
from connectors.dsp.definitions import ContractDefinition, Criterion, selector_matches
from connectors.dsp.errors import DspError, InvalidMessageError
from connectors.dsp.negotiation_handlers import ResolvedOffer
from connectors.dsp.policy import Caller, PolicyChecker, check_policy, policy_terms
from connectors.dsp.store import StoreSession, selector_sql
from connectors.dsp.vocabulary import ErrorCode, OdrlType, PolicyScope

OFFER_PREFIX = "urn:autospace:offer:"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
TOKEN_PARAM = "continuationToken"  # query parameter of the Link URLs (as the DSP binding shows)
DEFAULT_FORMATS = ("HttpData-PULL", "HttpData-PUSH")
# Keys a dataset builds itself; asset properties never override them.
_RESERVED = frozenset({"@context", "@id", "@type", "hasPolicy", "distribution"})


class DatasetNotFoundError(DspError):
    """No such dataset, or none the caller may see (indistinguishable on purpose). 404."""

    status = 404
    default_code = ErrorCode.NOT_FOUND


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    if not text:
        raise ValueError("empty offer id part")
    padded = text + "=" * (-len(text) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True).decode()


def offer_id(definition_id: str, asset_id: str) -> str:
    """The id of the offer of ``asset_id`` under ``definition_id`` (a URN, as DSP requires)."""
    return f"{OFFER_PREFIX}{_b64(definition_id)}:{_b64(asset_id)}"


def parse_offer_id(value: str) -> tuple[str, str] | None:
    """(definition id, asset id) of one of our offer ids, None for anything else."""
    if not value.startswith(OFFER_PREFIX):
        return None
    parts = value[len(OFFER_PREFIX) :].split(":")
    if len(parts) != 2:
        return None
    try:
        return _unb64(parts[0]), _unb64(parts[1])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def page_token(direction: str, asset_id: str) -> str:
    """An opaque continuation token: the page after (``a``) or before (``b``) an asset id."""
    return f"{direction}.{_b64(asset_id)}"


def read_page_token(token: str) -> tuple[str, str]:
    """(``a`` or ``b``, asset id) of a continuation token; 400 for anything else."""
    direction, _, encoded = token.partition(".")
    try:
        if direction not in ("a", "b"):
            raise ValueError(direction)
        return direction, _unb64(encoded)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidMessageError(f"continuation token {token!r} is not one of ours") from None


@dataclass(frozen=True, slots=True)
class CatalogPage:
    """One page of a catalog, with continuation tokens for the ``Link`` headers.

    Pages are cut by asset id (keyset), so the last page of 100,000 assets costs what the
    first does; ``total`` is only counted on request.
    """

    catalog: Catalog
    limit: int
    next_token: str | None
    prev_token: str | None
    total: int | None = None

    def links(self, request_url: str) -> list[str]:
        """RFC 8288 ``Link`` values (rel next/prev): ``request_url`` with a continuation token."""
        parts = urlsplit(request_url)
        keep = [
            (k, v) for k, v in parse_qsl(parts.query) if k not in (TOKEN_PARAM, "limit", "offset")
        ]
        out = []
        for rel, token in (("next", self.next_token), ("prev", self.prev_token)):
            if token is not None:
                q = urlencode([*keep, (TOKEN_PARAM, token), ("limit", str(self.limit))])
                out.append(f'<{urlunsplit(parts._replace(query=q))}>; rel="{rel}"')
        return out


@dataclass(frozen=True, slots=True)
class _Visible:
    definition: ContractDefinition
    terms: dict[str, Any]  # contract policy terms, prepared once per request


def filter_criteria(filters: Sequence[Any]) -> tuple[Criterion, ...]:
    """CatalogRequestMessage ``filter`` entries as asset criteria (EDC criterion shape)."""
    out = []
    for i, f in enumerate(filters):
        if not isinstance(f, Mapping):
            raise InvalidMessageError(
                f"CatalogRequestMessage.filter[{i}] must be a criterion "
                "object {operandLeft, operator, operandRight}"
            )
        out.append(Criterion.from_json(f))
    return tuple(out)


class CatalogService:
    """Builds catalogs and datasets for a verified caller from the store."""

    def __init__(
        self,
        *,
        participant_id: str,
        protocol_url: str,
        checker: PolicyChecker,
        catalog_id: str | None = None,
        service_id: str | None = None,
        formats: Sequence[str] = DEFAULT_FORMATS,
    ) -> None:
        self.participant_id = participant_id
        self.checker = checker
        self.catalog_id = catalog_id or f"urn:autospace:catalog:{_b64(participant_id)}"
        self.service = DataService(service_id or f"{self.catalog_id}:dsp", protocol_url)
        self.distributions = tuple(Distribution(f, self.service.id) for f in formats)

    def _visible(self, tx: StoreSession, caller: Caller) -> list[_Visible]:
        """Contract definitions whose access policy admits the caller (fail closed)."""
        definitions = tx.list_contract_definitions()
        ids = {d.access_policy_id for d in definitions} | {
            d.contract_policy_id for d in definitions
        }
        policies = tx.get_policies(sorted(ids))
        decisions: dict[str, bool] = {}
        visible = []
        for d in definitions:
            access, contract = policies.get(d.access_policy_id), policies.get(d.contract_policy_id)
            if access is None or contract is None:
                continue  # a dangling reference hides the definition
            if d.access_policy_id not in decisions:
                decisions[d.access_policy_id] = check_policy(
                    self.checker,
                    access.policy,
                    scope=PolicyScope.CATALOG,
                    caller=caller,
                    context={"contract_definition_id": d.id},
                ).allowed
            if decisions[d.access_policy_id]:
                visible.append(_Visible(d, policy_terms(contract.policy)))
        return visible

    def _dataset(self, asset: Any, offers: Sequence[_Visible]) -> Dataset:
        props = {k: v for k, v in asset.properties.items() if k not in _RESERVED}
        return Dataset(
            id=asset.id,
            offers=tuple(
                {
                    "@id": offer_id(v.definition.id, asset.id),
                    "@type": OdrlType.OFFER.value,
                    **v.terms,
                }
                for v in offers
            ),
            distributions=self.distributions,
            properties=props,
        )

    def request(
        self,
        tx: StoreSession,
        caller: Caller,
        *,
        token: str | None = None,
        offset: int = 0,
        limit: int = DEFAULT_PAGE_SIZE,
        filters: Sequence[Any] = (),
        count: bool = False,
    ) -> CatalogPage:
        """One page of the catalog ``caller`` may see, assets ordered by id.

        ``token`` (from a previous page's links) continues after or before that page;
        without one the page starts at ``offset``. ``count`` adds the total (a full count,
        so only when asked).
        """
        if offset < 0 or limit < 1:
            raise InvalidMessageError("offset must be >= 0 and limit >= 1")
        limit = min(limit, MAX_PAGE_SIZE)
        extra = filter_criteria(filters)
        visible = self._visible(tx, caller)
        a = t.assets
        where = or_(false(), *(selector_sql(v.definition.assets_selector) for v in visible))
        where = selector_sql(extra) & where
        direction, anchor = read_page_token(token) if token else ("a", None)
        q = select(a).where(where)
        if direction == "b":
            q = q.where(a.c.id < anchor).order_by(a.c.id.desc())
        else:
            q = q.order_by(a.c.id)
            q = q.where(a.c.id > anchor) if anchor is not None else q.offset(offset)
        fetched = list(tx.conn.execute(q.limit(limit + 1)))
        more = len(fetched) > limit
        found = fetched[:limit]
        if direction == "b":
            found.reverse()
        assets = [rows.asset_from_row(r) for r in found]
        datasets = tuple(
            self._dataset(
                x, [v for v in visible if selector_matches(v.definition.assets_selector, x)]
            )
            for x in assets
        )
        first, last = (assets[0].id, assets[-1].id) if assets else (None, None)
        if direction == "b":
            has_next, has_prev = anchor is not None, more
        else:
            has_next, has_prev = more, anchor is not None or offset > 0
        total = None
        if count:
            total = int(
                tx.conn.execute(select(func.count()).select_from(a).where(where)).scalar_one()
            )
        catalog = Catalog(
            id=self.catalog_id,
            participant_id=self.participant_id,
            datasets=datasets,
            services=(self.service,),
        )
        return CatalogPage(
            catalog,
            limit,
            next_token=page_token("a", last) if has_next and last is not None else None,
            prev_token=page_token("b", first) if has_prev and first is not None else None,
            total=total,
        )

    def dataset(self, tx: StoreSession, caller: Caller, dataset_id: str) -> Dataset:
        """One dataset with the offers ``caller`` may see; 404 if it has none for them."""
        asset = tx.get_asset(dataset_id)
        if asset is not None:
            offers = [
                v
                for v in self._visible(tx, caller)
                if selector_matches(v.definition.assets_selector, asset)
            ]
            if offers:
                return self._dataset(asset, offers)
        raise DatasetNotFoundError(f"no dataset {dataset_id} for this participant")

    def resolve_offer(self, tx: StoreSession, offer: str, caller: Caller) -> ResolvedOffer | None:
        """The offer behind an id from our catalog, if it still exists and ``caller`` may see it."""
        parsed = parse_offer_id(offer)
        if parsed is None:
            return None
        definition_id, asset_id = parsed
        definition = tx.get_contract_definition(definition_id)
        asset = tx.get_asset(asset_id)
        if (
            definition is None
            or asset is None
            or not selector_matches(definition.assets_selector, asset)
        ):
            return None
        for v in self._visible(tx, caller):
            if v.definition.id == definition_id:
                return ResolvedOffer(
                    offer, asset_id, {"@id": offer, "@type": "Offer", **v.terms}, definition_id,
                    asset,
                )
        return None
