"""Small helpers shared by the management API's resource modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, json, request
from marshmallow import Schema, fields

from connectors.dsp.errors import ConflictError, DspError
from connectors.dsp.store import DuplicateError, InUseError
from connectors.management import edc

T = TypeVar("T")
JSON = "application/json"


class IdResponseSchema(Schema):
    """EDC's answer to a creation."""

    type_ = fields.String(data_key="@type", dump_default="IdResponse")
    id = fields.String(data_key="@id", required=True)
    createdAt = fields.Integer()


class QuerySpecSchema(Schema):
    """EDC QuerySpec (JSON-LD; criteria as ``operandLeft``/``operator``/``operandRight``)."""

    offset = fields.Integer(load_default=0)
    limit = fields.Integer(load_default=50)
    sortOrder = fields.String()
    sortField = fields.String()
    filterExpression = fields.List(fields.Dict())


class JsonLdSchema(Schema):
    """A JSON-LD document in EDC's management vocabulary (see the EDC v3 API)."""

    context = fields.Raw(data_key="@context")
    type_ = fields.String(data_key="@type")
    id = fields.String(data_key="@id")


def body() -> Any:
    """The request's JSON body (400 problem when it is not JSON)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        edc.bad_request(f"the body is not valid JSON: {exc}")


def respond(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc), status=status, mimetype=JSON)


def no_content() -> Response:
    return Response(status=204)


def guarded(action: Callable[[], T], *, what: str, ident: str | None = None) -> T:
    """Run a store/protocol call; map its refusals to problem documents."""
    try:
        return action()
    except DuplicateError:
        edc.conflict(f"{what} {ident!r} already exists", ident)
    except InUseError as err:
        edc.conflict("; ".join(err.reasons), ident)
    except ConflictError as err:
        edc.conflict("; ".join(err.reasons), ident)
    except DspError as err:
        edc.from_dsp_error(err)


def request_body(schema: type[Schema]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a JSON-LD body (documented, parsed by our own reader so
    that every JSON-LD spelling EDC clients use is accepted)."""
    return {"required": True, "content": {"application/json": {"schema": schema}}}
