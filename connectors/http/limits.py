"""Request limits: body size and JSON nesting depth; malformed JSON is a 400 saying where.

Installed as a ``before_request`` hook so a view never sees a body it would choke on;
the parsed body is cached on the request (``request.get_json()`` returns it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request, request

from connectors.http.problem import ProblemError

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Upper bounds on what a client may send."""

    max_body_bytes: int = 1024 * 1024
    max_json_depth: int = 32


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (scalars are 0, ``[]`` is 1), iteratively."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            depth += 1
            stack.extend((v, depth) for v in item.values())
        elif isinstance(item, list):
            depth += 1
            stack.extend((v, depth) for v in item)
        deepest = max(deepest, depth)
    return deepest


class LimitedRequest(Request):
    """A request whose JSON errors become problem documents instead of HTML pages."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        detail = "request body is not valid JSON"
        if isinstance(e, json.JSONDecodeError):
            detail = f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}"
        raise ProblemError(400, "Malformed JSON", detail)


def init_app(app: Flask, limits: RequestLimits) -> None:
    """Apply ``limits`` to every request of ``app``."""
    app.request_class = LimitedRequest
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes

    @app.before_request
    def _check_body() -> None:
        if request.method not in BODY_METHODS:
            return
        length = request.content_length
        if length is not None and length > limits.max_body_bytes:
            raise ProblemError(
                413, "Payload Too Large", f"body is {length} bytes; the limit is "
                f"{limits.max_body_bytes}"
            )
        if not request.is_json:
            return
        raw = request.get_data(cache=True)
        if len(raw) > limits.max_body_bytes:
            raise ProblemError(413, "Payload Too Large",
                               f"body exceeds the limit of {limits.max_body_bytes} bytes")
        if not raw:
            return
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ProblemError(
                400, "Malformed JSON",
                f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            ) from None
        except UnicodeDecodeError:
            raise ProblemError(400, "Malformed JSON", "body is not UTF-8 text") from None
        except RecursionError:
            raise ProblemError(400, "JSON too deep",
                               f"nesting deeper than {limits.max_json_depth} levels") from None
        depth = json_depth(parsed)
        if depth > limits.max_json_depth:
            raise ProblemError(
                400, "JSON too deep",
                f"nesting depth {depth} exceeds the limit of {limits.max_json_depth}",
            )
        request._cached_json = (parsed, parsed)  # type: ignore[attr-defined]
