"""Structured JSON logs with a request id, and the security log.

Every line is one JSON object (``ts``, ``level``, ``logger``, ``msg`` and any fields
passed as ``extra={"fields": {...}}``), with the current request id when there is
one. The id comes from a well-formed ``X-Request-Id`` header or is generated, and
is echoed in the response.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from typing import Any, TextIO

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SECURITY_LOGGER = "autospace.security"
ACCESS_LOGGER = "autospace.access"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; never includes anything not put there explicitly."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if has_request_context() and g.get("request_id"):
            line["request_id"] = g.request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str = "info", *, json_lines: bool = True,
                      stream: TextIO | None = None) -> None:
    """Route the root logger to ``stream`` (stderr) as JSON lines (or plain text)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s "
                                                             "%(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def security_event(event: str, **fields: Any) -> None:
    """Write one line to the security log (always at WARNING so it is never filtered as noise)."""
    logging.getLogger(SECURITY_LOGGER).warning(event, extra={"fields": {"event": event, **fields}})


def init_app(app: Flask, *, access_log: bool = True) -> None:
    """Assign request ids and write one access line per request."""
    access = logging.getLogger(ACCESS_LOGGER)

    @app.before_request
    def _request_id() -> None:
        supplied = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        if access_log and access.isEnabledFor(logging.INFO):
            started = g.get("request_started", time.perf_counter())
            access.info(
                "request",
                extra={
                    "fields": {
                        "event": "request",
                        "method": request.method,
                        "path": request.path,
                        "status": response.status_code,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    }
                },
            )
        return response
