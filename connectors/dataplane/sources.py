"""Where data comes from: a file, an HTTP backend, a SQL query — streamed in constant memory.

An asset's data address (EDC shape: ``{"type": "HttpData", "baseUrl": ...}``; keys may carry
the EDC namespace or the ``edc:`` prefix) names the source. :func:`open_source` turns it and
the consumer's request into a :class:`Body`: status, headers and an iterator of chunks that
never holds more than one chunk. What the consumer may steer (sub-path, query, method, body
of an HTTP backend) is honoured only where the data address allows it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

CHUNK = 1 << 20  # 1 MiB: large enough for full speed, small enough for constant memory
SQL_BATCH = 500  # rows fetched per round trip
EDC_NS = "https://w3id.org/edc/v0.0.1/ns/"
FILE, HTTP, SQL = "File", "HttpData", "SqlQuery"
SOURCE_TYPES = (FILE, HTTP, SQL)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Hop-by-hop and transport headers never copied from a backend (RFC 9110 §7.6.1).
_DROP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                   "proxy-authenticate", "proxy-authorization", "content-length",
                   "content-encoding", "set-cookie"})


class SourceError(Exception):
    """The source cannot serve this request; ``status`` and ``title`` say how to answer."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def normalise_address(address: Mapping[str, Any]) -> dict[str, Any]:
    """The data address with plain keys (``<EDC namespace>baseUrl`` -> ``baseUrl``)."""
    out: dict[str, Any] = {}
    for key, value in address.items():
        name = key
        if name.startswith(EDC_NS):
            name = name[len(EDC_NS):]
        elif name.startswith("edc:"):
            name = name[4:]
        out[name] = value
    if "@type" in out and "type" not in out and out["@type"] != "DataAddress":
        out["type"] = out["@type"]
    return out


def address_type(address: Mapping[str, Any]) -> str:
    """The source type of a data address ('' when it names none)."""
    value = normalise_address(address).get("type")
    return value if isinstance(value, str) else ""


def flag(address: Mapping[str, Any], name: str) -> bool:
    """A boolean data address property (EDC writes them as the strings "true"/"false")."""
    value = address.get(name)
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


@dataclass
class SourceRequest:
    """What the consumer asked for (only the parts a source may honour)."""

    method: str = "GET"
    subpath: str = ""
    query: Sequence[tuple[str, str]] = ()
    range_header: str | None = None
    body: Callable[[], Iterable[bytes]] | None = None  # request body stream, read lazily
    content_type: str | None = None


@dataclass(frozen=True)
class FileSpan:
    """The bytes of a file a response serves (for zero-copy ``sendfile``)."""

    fd: int
    start: int
    count: int
    identity: tuple[int, int, int, int]  # (device, inode, size, mtime_ns) when opened


def file_identity(fd: int) -> tuple[int, int, int, int]:
    """What changes when a file is replaced or written."""
    st = os.fstat(fd)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class Body:
    """A response to stream: ``chunks`` is consumed once; ``close`` releases the source."""

    chunks: Iterator[bytes]
    status: int = 200
    content_type: str = "application/octet-stream"
    length: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None
    detail: str = ""  # what was served (sub-path, range), for the access log
    file: FileSpan | None = None  # set for file sources: the server may sendfile it


class EngineCache:
    """One engine per SQL source URL, shared by all requests of the process."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> Engine:
        with self._lock:
            engine = self._engines.get(url)
            if engine is None:
                engine = self._engines[url] = create_engine(url, pool_pre_ping=True)
            return engine

    def dispose(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


# -- files -----------------------------------------------------------------------------------

def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=`` range as (start, end inclusive); None for the whole file."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # other units or several ranges: answer the whole file (RFC 9110 §14.2)
    first, sep, last = spec.strip().partition("-")
    try:
        if not sep:
            raise ValueError
        if first == "":
            n = int(last)
            if n <= 0:
                raise ValueError
            return max(0, size - n), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        raise SourceError(416, "Range Not Satisfiable", f"bad range {header!r}") from None
    if start >= size or end < start:
        raise SourceError(416, "Range Not Satisfiable", f"range {header!r} is outside 0-{size}")
    return start, min(end, size - 1)


def _file_chunks(fd: int, start: int, count: int) -> Iterator[bytes]:
    offset, left = start, count
    while left > 0:
        chunk = os.pread(fd, min(CHUNK, left), offset)
        if not chunk:
            raise SourceError(500, "Source changed", "the file shrank while it was read")
        offset += len(chunk)
        left -= len(chunk)
        yield chunk


def file_path(address: Mapping[str, Any], subpath: str) -> Path:
    """The file to serve: ``path`` itself, or ``subpath`` inside it when ``path`` is a folder."""
    raw = address.get("path")
    if not isinstance(raw, str) or not raw:
        raise SourceError(500, "Bad data address", "File data address has no path")
    base = Path(raw)
    if not subpath:
        return base
    if not base.is_dir():
        raise SourceError(404, "Not Found", "this asset has no sub-paths")
    target = (base / subpath).resolve()
    if not target.is_relative_to(base.resolve()):
        raise SourceError(404, "Not Found", "no such file in this asset")
    return target


def open_file(address: Mapping[str, Any], req: SourceRequest) -> Body:
    """Stream a file (or a byte range of it) with ``pread``: no buffering beyond one chunk."""
    path = file_path(address, req.subpath)
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise SourceError(404, "Not Found", "the asset's file is not available") from None
    except OSError as exc:
        raise SourceError(503, "Source unavailable", f"cannot open the file: {exc.strerror}") \
            from None
    try:
        size = os.fstat(fd).st_size
        span = _parse_range(req.range_header, size)
    except BaseException:
        os.close(fd)
        raise
    start, end = span if span else (0, size - 1)
    count = max(0, end - start + 1)
    headers = {"Accept-Ranges": "bytes"}
    status = 200
    if span:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    content_type = address.get("contentType")
    return Body(
        chunks=_file_chunks(fd, start, count),
        status=status,
        content_type=content_type if isinstance(content_type, str) else "application/octet-stream",
        length=count,
        headers=headers,
        close=lambda: os.close(fd),
        detail=f"{req.subpath or path.name} bytes {start}-{end}" if span else (req.subpath or ""),
        file=FileSpan(fd, start, count, file_identity(fd)),
    )


# -- HTTP backends ---------------------------------------------------------------------------

def _backend_request(address: Mapping[str, Any], req: SourceRequest) -> tuple[str, str, Any]:
    base = address.get("baseUrl")
    if not isinstance(base, str) or not base.startswith(("http://", "https://")):
        raise SourceError(500, "Bad data address", "HttpData data address has no http(s) baseUrl")
    url = base.rstrip("/")
    path = address.get("path")
    if isinstance(path, str) and path:
        url += "/" + path.lstrip("/")
    if req.subpath:
        if not flag(address, "proxyPath"):
            raise SourceError(404, "Not Found", "this asset does not accept a sub-path")
        url += "/" + req.subpath.lstrip("/")
    params: list[tuple[str, str]] = []
    fixed = address.get("queryParams")
    if isinstance(fixed, str) and fixed:
        params.extend(httpx.QueryParams(fixed).multi_items())
    if req.query:
        if not flag(address, "proxyQueryParams"):
            raise SourceError(400, "Bad Request", "this asset does not accept query parameters")
        params.extend(req.query)
    method = req.method.upper()
    if method not in ("GET", "HEAD") and not flag(address, "proxyMethod"):
        raise SourceError(405, "Method Not Allowed", "this asset is read with GET only")
    fixed_method = address.get("method")
    if method == "GET" and isinstance(fixed_method, str) and fixed_method:
        method = fixed_method.upper()
    return method, str(httpx.URL(url, params=params or None)), params


def open_http(address: Mapping[str, Any], req: SourceRequest, client: httpx.Client) -> Body:
    """Stream an HTTP backend's answer; the consumer never sees the backend's address."""
    method, url, _ = _backend_request(address, req)
    headers: dict[str, str] = {}
    key, code = address.get("authKey"), address.get("authCode")
    if isinstance(key, str) and key and isinstance(code, str):
        headers[key] = code
    content: Iterable[bytes] | None = None
    if method in BODY_METHODS and req.body is not None:
        if not flag(address, "proxyBody"):
            raise SourceError(400, "Bad Request", "this asset does not accept a request body")
        content = req.body()
        if req.content_type:
            headers["Content-Type"] = req.content_type
    try:
        request = client.build_request(method, url, headers=headers, content=content)
        response = client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise SourceError(
            502, "Bad Gateway", f"the data source is unreachable: {type(exc).__name__}"
        ) from None
    if not 200 <= response.status_code < 300:
        response.close()
        raise SourceError(502, "Bad Gateway", f"the data source answered {response.status_code}")
    length = response.headers.get("content-length")
    encoded = "content-encoding" in response.headers
    passed = {k: v for k, v in response.headers.items()
              if k.lower() not in _DROP and k.lower() in ("etag", "last-modified", "cache-control")}

    def chunks() -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(CHUNK)
        except httpx.HTTPError as exc:
            raise SourceError(502, "Bad Gateway", f"the data source failed: {type(exc).__name__}") \
                from None

    return Body(
        chunks=chunks(),
        status=response.status_code,
        content_type=response.headers.get("content-type", "application/octet-stream"),
        length=int(length) if length and length.isdigit() and not encoded else None,
        headers=passed,
        close=response.close,
        detail=req.subpath,
    )


# -- SQL queries -----------------------------------------------------------------------------

def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    return value if isinstance(value, str | int | float) else _json_default(value)


def _sql_rows(engine: Engine, query: str, fmt: str) -> Iterator[bytes]:
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=SQL_BATCH).execute(
                text(query)
            )
            names = list(result.keys())
            buf = io.StringIO()
            writer = csv.writer(buf) if fmt == "csv" else None
            if writer is not None:
                writer.writerow(names)
            for batch in result.partitions(SQL_BATCH):
                for row in batch:
                    if writer is not None:
                        writer.writerow([_csv_cell(v) for v in row])
                    else:
                        buf.write(json.dumps(dict(zip(names, row, strict=True)),
                                             default=_json_default, separators=(",", ":")))
                        buf.write("\n")
                out = buf.getvalue()
                buf.seek(0)
                buf.truncate()
                if out:
                    yield out.encode()
            if writer is not None and buf.getvalue():
                yield buf.getvalue().encode()
    except SQLAlchemyError as exc:
        raise SourceError(502, "Bad Gateway", f"the SQL source failed: {type(exc).__name__}") \
            from None


def open_sql(address: Mapping[str, Any], req: SourceRequest, engines: EngineCache) -> Body:
    """Stream a query's rows as JSON lines (default) or CSV, one batch in memory at a time."""
    url = address.get("url") or address.get("connectionUrl")
    query = address.get("query")
    if not isinstance(url, str) or not url or not isinstance(query, str) or not query.strip():
        raise SourceError(500, "Bad data address", "SqlQuery data address needs url and query")
    if req.subpath or req.query or req.method.upper() != "GET":
        raise SourceError(400, "Bad Request", "a SQL asset is read with a plain GET")
    fmt = str(address.get("format") or "jsonl").lower()
    if fmt not in ("jsonl", "csv"):
        raise SourceError(500, "Bad data address", "SqlQuery format must be jsonl or csv")
    rows = _sql_rows(engines.get(url), query, fmt)
    return Body(
        chunks=rows,
        content_type="text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson",
        close=rows.close,
    )


def open_source(
    address: Mapping[str, Any],
    req: SourceRequest,
    *,
    http: httpx.Client,
    engines: EngineCache,
) -> Body:
    """Open the source an asset's data address names.

    Raises:
        SourceError: unknown type, not found, not allowed, backend failure.
    """
    addr = normalise_address(address)
    kind = addr.get("type")
    if kind == FILE:
        return open_file(addr, req)
    if kind == HTTP:
        return open_http(addr, req, http)
    if kind == SQL:
        return open_sql(addr, req, engines)
    raise SourceError(500, "Bad data address", f"unsupported data address type {kind!r}")
