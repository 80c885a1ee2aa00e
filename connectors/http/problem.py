"""RFC 9457 problem details, and the error handlers that make every failure one.

No traceback or exception text of an unexpected error ever reaches a client: it is
logged with the request id, and the client gets a generic 500 naming that id.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, json
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"
STORAGE_RETRY_AFTER = 2  # seconds a client should wait after a storage 503
log = logging.getLogger("autospace.http")


class ProblemError(Exception):
    """Raise from a view to answer a problem document.

    Args:
        status: HTTP status.
        title: short, stable summary of the problem type.
        detail: what is wrong in this occurrence, written for the client.
        type: URI identifying the problem type (``about:blank`` by default).
        headers: extra response headers (e.g. ``Retry-After``).
        extensions: extra members of the document (e.g. ``errors``, ``reason``).
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.headers = headers or {}
        self.extensions = extensions


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """Build an ``application/problem+json`` response."""
    body: dict[str, Any] = {"type": type, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    request_id = g.get("request_id") if g else None
    if request_id:
        body["requestId"] = request_id
    body.update(extensions)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def storage_unavailable(detail: str = "the database is busy or unreachable; retry later") -> (
    Response
):
    """503 with ``Retry-After`` for a locked or unreachable database (nothing was written)."""
    return problem(
        503,
        "Storage unavailable",
        detail,
        headers={"Retry-After": str(STORAGE_RETRY_AFTER)},
    )


def register_error_handlers(app: Flask) -> None:
    """Turn every exception a view can raise into a problem document."""

    @app.errorhandler(ProblemError)
    def _problem(exc: ProblemError) -> Response:
        return problem(
            exc.status, exc.title, exc.detail, type=exc.type, headers=exc.headers, **exc.extensions
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        headers = {}
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return problem(exc.code or 500, exc.name, exc.description, headers=headers)

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeoutError)
    def _storage(exc: Exception) -> Response:
        log.warning("storage unavailable: %s", _first_line(exc))
        return storage_unavailable()

    @app.errorhandler(DBAPIError)
    def _dbapi(exc: DBAPIError) -> Response:
        if exc.connection_invalidated:
            log.warning("database connection lost: %s", _first_line(exc))
            return storage_unavailable()
        return _unexpected(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return problem(
            500,
            "Internal Server Error",
            "the node failed to handle the request; the operator can find it by request id",
        )


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
