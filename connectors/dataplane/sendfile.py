"""Zero-copy file responses (``sendfile``) that still log exact bytes and their SHA-256.

Under gunicorn, a response that is an instance of ``environ["wsgi.file_wrapper"]`` is sent
with ``socket.sendfile``: the bytes go from the page cache to the socket without passing
through Python. The data plane keeps its guarantees around it:

- bytes sent: ``socket.sendfile`` seeks the file to where it stopped when it returns or
  fails (CPython ``socket._sendfile_use_sendfile``), so :meth:`SentFile.seek` learns the
  exact count; servers that read the wrapper instead go through :meth:`SentFile.read`;
- content hash: a helper thread hashes the same byte range from the page cache while the
  kernel sends it (the second core); if the response was cut, the hash of exactly the bytes
  sent is computed at close; if the file changed while served, no hash is claimed. A range
  served before from the unchanged file (same device, inode, size, mtime) reuses its hash
  (:class:`HashCache`), so repeated downloads cost no hashing;
- revocation: a watchdog re-reads the transfer state every ``RECHECK_SECONDS`` and shuts
  the client socket when the transfer is no longer STARTED.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
from collections import OrderedDict
from typing import Any

from connectors.dataplane.gate import STARTED, Permit
from connectors.dataplane.service import RECHECK_SECONDS, DataPlane, Metered
from connectors.dataplane.sources import CHUNK, Body, FileSpan, file_identity

log = logging.getLogger("autospace.dataplane")
SENDFILE_MIN_BYTES = 4 << 20  # smaller bodies: the plain stream is as fast and simpler
HASH_CACHE_SIZE = 1024


class HashCache:
    """SHA-256 of file ranges by file identity (device, inode, size, mtime in ns).

    A file served again unchanged (same identity before and after sending) has the same
    bytes, so its hash need not be computed again: repeated downloads of a large file then
    cost no CPU beyond ``sendfile``. Per process, bounded, least recently used out first.
    """

    def __init__(self, size: int = HASH_CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> str | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[Any, ...], value: str) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


HASHES = HashCache()


def _hash_range(fd: int, start: int, count: int, stop: threading.Event | None = None) -> str:
    digest = hashlib.sha256()
    offset, left = start, count
    while left > 0 and not (stop is not None and stop.is_set()):
        chunk = os.pread(fd, min(CHUNK, left), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
        left -= len(chunk)
    return digest.hexdigest()


class SentFile:
    """The file-like object handed to the WSGI server's file wrapper."""

    def __init__(self, plane: DataPlane, permit: Permit, body: Body, span: FileSpan,
                 client: socket.socket | None) -> None:
        self.plane = plane
        self.permit = permit
        self.body = body
        self.span = span
        self.client = client
        self.position = span.start
        self.reason: str | None = None
        self._done = threading.Event()
        self._full_hash: str | None = None
        self._closed = False
        os.lseek(span.fd, span.start, os.SEEK_SET)
        self._key = (*span.identity, span.start, span.count)
        self._full_hash = HASHES.get(self._key)
        self._hasher = threading.Thread(target=self._hash_all, name="dp-sendfile-sha256",
                                        daemon=True)
        if self._full_hash is None:
            self._hasher.start()
        self._watchdog = threading.Thread(target=self._watch, name="dp-sendfile-watch",
                                          daemon=True)
        self._watchdog.start()

    # -- what the server calls -------------------------------------------------------------
    def fileno(self) -> int:
        return self.span.fd

    def read(self, size: int = -1) -> bytes:
        end = self.span.start + self.span.count
        want = end - self.position if size is None or size < 0 else min(size, end - self.position)
        if want <= 0:
            return b""
        data = os.pread(self.span.fd, want, self.position)
        self.position += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self.position = offset
        os.lseek(self.span.fd, self.position, os.SEEK_SET)
        return self.position

    def tell(self) -> int:
        return self.position

    def close(self) -> None:
        """Stop the helpers, work out the exact bytes and hash, record, release the file."""
        if self._closed:
            return
        self._closed = True
        self._done.set()
        self._watchdog.join()
        sent = max(0, min(self.position - self.span.start, self.span.count))
        complete = sent == self.span.count
        sha256: str | None = None
        try:
            unchanged = file_identity(self.span.fd) == self.span.identity
            if self._hasher.is_alive():
                self._hasher.join()
            if not unchanged:
                self.reason = self.reason or "the file changed while it was served; no hash"
            elif complete:
                sha256 = self._full_hash
                if sha256 is not None:
                    HASHES.put(self._key, sha256)
            elif sent:
                sha256 = _hash_range(self.span.fd, self.span.start, sent)
        except OSError as exc:
            self.reason = self.reason or f"could not hash the bytes sent: {exc.strerror}"
        finally:
            try:
                self.body.close()
            finally:
                self.plane.record_permitted(
                    self.permit, kind="pull", status="complete" if complete else "aborted",
                    sent=sent, sha256=sha256, reason=self.reason, detail=self.body.detail)

    # -- helpers ---------------------------------------------------------------------------
    def _hash_all(self) -> None:
        try:
            self._full_hash = _hash_range(self.span.fd, self.span.start, self.span.count)
        except OSError:
            self._full_hash = None

    def _watch(self) -> None:
        transfer_id = self.permit.transfer.id
        while not self._done.wait(RECHECK_SECONDS):
            try:
                state = self.plane.gate.state(transfer_id)
            except Exception:  # the database is briefly unreachable: keep serving, look again
                continue
            if state != STARTED:
                self.reason = f"transfer became {state} while streaming"
                if self.client is not None:
                    with contextlib.suppress(OSError):
                        self.client.shutdown(socket.SHUT_RDWR)
                return


def sendfile_response(environ: dict[str, Any], plane: DataPlane, metered: Metered) -> Any | None:
    """The server's file wrapper around the file of ``metered``, or None to stream instead."""
    wrapper = environ.get("wsgi.file_wrapper")
    span = metered.body.file
    if wrapper is None or span is None or span.count < SENDFILE_MIN_BYTES:
        return None
    sent = SentFile(plane, metered.chunks.permit, metered.chunks.detach(), span,
                    environ.get("gunicorn.socket"))
    return wrapper(sent, CHUNK)
