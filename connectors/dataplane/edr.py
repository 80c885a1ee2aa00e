"""Endpoint data references: what the provider puts into the TransferStartMessage.

The EDR is a DSP ``DataAddress`` whose ``endpointProperties`` carry the bearer token and
how to renew it::

    {"@type": "DataAddress",
     "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
     "endpoint": "https://provider.example/dataplane/public",
     "endpointProperties": [
        {"@type": "EndpointProperty", "name": "authorization", "value": "<access JWS>"},
        {"@type": "EndpointProperty", "name": "authType", "value": "bearer"},
        {"@type": "EndpointProperty", "name": "refreshToken", "value": "<refresh JWS>"},
        {"@type": "EndpointProperty", "name": "refreshEndpoint",
         "value": "https://provider.example/dataplane/token"},
        {"@type": "EndpointProperty", "name": "expiresIn", "value": "300"},
        {"@type": "EndpointProperty", "name": "transferProcessId", "value": "<providerPid>"}]}

Refreshing (OAuth 2.0 refresh grant, RFC 6749 §6) rotates: the refresh token used is
accepted once, through a compare-and-set on its generation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from connectors.dataplane.tables import refresh_generations
from connectors.dataplane.tokens import REFRESH, Grant, TokenCodec, TokenError
from connectors.dsp.messages import DataAddress
from connectors.dsp.transfer_messages import EndpointProperty

HTTP_ENDPOINT_TYPE = "https://w3id.org/idsa/v4.1/HTTP"
PUBLIC_PATH = "/dataplane/public"
TOKEN_PATH = "/dataplane/token"


@dataclass(frozen=True, slots=True)
class TokenPair:
    """A fresh access token and the refresh token that replaces the one used."""

    access_token: str
    refresh_token: str
    expires_in: int

    def to_json(self) -> dict[str, Any]:
        """The RFC 6749 §5.1 token response."""
        return {"access_token": self.access_token, "token_type": "bearer",
                "expires_in": self.expires_in, "refresh_token": self.refresh_token}


class RefreshGenerations:
    """The generation each transfer's next refresh token must carry (absent row: 0)."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.now = now or (lambda: datetime.now(UTC))

    def current(self, transfer_id: str) -> int:
        t = refresh_generations
        with self.engine.connect() as conn:
            got = conn.execute(
                select(t.c.generation).where(t.c.transfer_id == transfer_id)
            ).scalar()
        return int(got or 0)

    def advance(self, transfer_id: str, seen: int) -> bool:
        """Move ``seen`` -> ``seen + 1``; False if another refresh used ``seen`` first."""
        t = refresh_generations
        with self.engine.begin() as conn:
            if seen == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(t).values(transfer_id=transfer_id, generation=1,
                                                      updated_at=self.now()))
                    return True
                except IntegrityError:
                    return False
            done = conn.execute(
                update(t).where(t.c.transfer_id == transfer_id, t.c.generation == seen)
                .values(generation=seen + 1, updated_at=self.now())
            )
            return done.rowcount == 1


class EdrIssuer:
    """Builds EDRs and serves refreshes.

    Args:
        codec: signs and verifies the tokens.
        generations: refresh-token rotation state.
        public_base: the node's public URL (``https://host``); endpoints hang below it.
        is_started: ``transfer_id -> bool`` (refreshing a transfer that is not STARTED fails).
    """

    def __init__(self, codec: TokenCodec, generations: RefreshGenerations, *, public_base: str,
                 is_started: Callable[[str], bool]) -> None:
        self.codec = codec
        self.generations = generations
        self.public_base = public_base.rstrip("/")
        self.is_started = is_started

    @property
    def endpoint(self) -> str:
        return self.public_base + PUBLIC_PATH

    @property
    def refresh_endpoint(self) -> str:
        return self.public_base + TOKEN_PATH

    def data_address(self, grant: Grant) -> DataAddress:
        """A fresh EDR for ``grant`` (reads the rotation state; writes nothing)."""
        gen = self.generations.current(grant.transfer_id)
        props = (
            ("authorization", self.codec.access_token(grant)),
            ("authType", "bearer"),
            ("refreshToken", self.codec.refresh_token(grant, gen)),
            ("refreshEndpoint", self.refresh_endpoint),
            ("expiresIn", str(self.codec.access_ttl)),
            ("transferProcessId", grant.transfer_id),
        )
        return DataAddress(
            endpoint_type=HTTP_ENDPOINT_TYPE,
            endpoint=self.endpoint,
            endpoint_properties=tuple(EndpointProperty(n, v) for n, v in props),
        )

    def refresh(self, refresh_token: str) -> TokenPair:
        """Exchange a refresh token (once) for a new access + refresh token.

        Raises:
            TokenError: invalid, expired, already used, or the transfer is not STARTED.
        """
        tok = self.codec.verify(refresh_token, kind=REFRESH)
        if not self.is_started(tok.grant.transfer_id):
            raise TokenError("the transfer process is not STARTED")
        if not self.generations.advance(tok.grant.transfer_id, tok.generation):
            raise TokenError("refresh token was already used")
        return TokenPair(
            self.codec.access_token(tok.grant),
            self.codec.refresh_token(tok.grant, tok.generation + 1),
            self.codec.access_ttl,
        )
