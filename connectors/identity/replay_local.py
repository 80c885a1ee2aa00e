"""The ``jti`` replay store kept on the node's host, in a memory-mapped LMDB file.

Why not the database: a peer call's replay check is one write, made by whichever
gunicorn worker took the call. With SQLite every commit of one worker invalidates the
other workers' page caches, so the insert costs about four times its in-process price
(see docs/node.md). LMDB is made for many processes sharing one memory map: a write
transaction takes a process-shared mutex, and the duplicate check is a B-tree lookup in
memory, a few microseconds in all.

Which processes share it: every process that opens the same directory, which lies
beside the SQLite file (or in the node home), so it serves exactly the processes of one
node on one host. A node whose servers run on several hosts keeps the database store.

The map is opened writable (``writemap``): a commit changes the shared pages in place
instead of copying them into the file with ``pwrite``, which takes an insert from about
9 to 3 µs in-process and from about 20 to 15 µs with two processes of four threads each
(bench/peer_auth.py prints the in-process figure). LMDB then sizes ``data.mdb`` to the whole
map (1 GiB); the file is sparse, so only the pages in use take disk space. Every process
opens the store through :meth:`LocalReplayStore._lmdb`, so all of them use the same mode,
as LMDB requires.

Durability: commits are not flushed to disk. A killed process loses nothing (the data
is in the kernel's page cache), but a host crash may lose the last commits or leave the
file inconsistent. The store therefore records the host's boot id; when it finds a file
written during an earlier boot (or one without that record), it starts empty and sets a
*horizon*: tokens issued before it (plus clock skew) may have been used before the crash
and are refused as undecidable (503), which a caller's fresh token passes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import lmdb

from connectors.identity.errors import PeerAuthError, Reason
from connectors.identity.purge import PurgeSchedule

log = logging.getLogger(__name__)

MAP_SIZE = 1 << 30  # address space reserved; the file grows with use (~16M live ids fit)
PURGE_EVERY = 10.0  # seconds between opportunistic purges of expired ids
PURGE_BATCH = 2000  # ids deleted per write transaction, so a purge never stalls callers
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
STAT_PATH = Path("/proc/stat")
HOST_FILE = "host.json"  # boot id and horizon of the store's current contents
_EXPIRY = struct.Struct(">Q")  # big-endian: keys sort by expiry, so a purge is a prefix scan
_MAX_EXPIRY = 2**64 - 1


def host_boot() -> tuple[str, float]:
    """This host's boot id and boot time (Unix seconds); ``("", 0.0)`` where unknown."""
    try:
        boot_id = BOOT_ID_PATH.read_text().strip()
    except OSError:
        boot_id = ""
    boot_time = 0.0
    with contextlib.suppress(OSError, ValueError):
        for line in STAT_PATH.read_text().splitlines():
            if line.startswith("btime "):
                boot_time = float(line.split()[1])
                break
    return boot_id, boot_time


def replay_key(issuer: str, jti: str, expires_at: int) -> bytes:
    """Expiry (8 bytes) then a 128-bit digest of issuer and jti: fixed size, any DID length."""
    who = issuer.encode()
    digest = hashlib.blake2b(len(who).to_bytes(4, "big") + who + jti.encode(),
                             digest_size=16).digest()
    return _EXPIRY.pack(min(max(expires_at, 0), _MAX_EXPIRY)) + digest


class LocalReplayStore:
    """Replay store shared by the processes of one host through an LMDB directory.

    Args:
        path: the store's directory (created with mode 0700).
        clock: Unix seconds.
        boot: returns the host's boot id and boot time (tests replace it).
    """

    def __init__(self, path: Path, *, clock: Callable[[], float],
                 boot: Callable[[], tuple[str, float]] = host_boot) -> None:
        self.path = Path(path)
        self._clock = clock
        self._boot = boot
        self._env: lmdb.Environment | None = None
        self._ids: object = None
        self._pid = 0
        self._horizon = 0.0
        self._open_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._purges = PurgeSchedule(PURGE_EVERY, clock, self.purge)

    @property
    def horizon(self) -> float:
        """Tokens issued at or before this time (plus skew) cannot be decided (0: none)."""
        self._environment()
        return self._horizon

    def remember(self, issuer: str, jti: str, expires_at: int) -> bool:
        """Store ``(issuer, jti)`` until ``expires_at``; ``False`` if it was already stored."""
        key = replay_key(issuer, jti, expires_at)
        env = self._environment()
        try:
            with self._write_lock, env.begin(write=True, db=self._ids) as txn:
                inserted = txn.put(key, b"", overwrite=False)
        except lmdb.Error as exc:  # map full, I/O error: the use cannot be recorded
            raise PeerAuthError(Reason.REPLAY_UNDECIDABLE,
                                f"replay store unavailable ({type(exc).__name__})") from None
        if inserted:
            self._purges.maybe()
        return inserted

    def purge(self, now: float | None = None) -> int:
        """Delete ids whose tokens have expired; return how many."""
        cutoff = _EXPIRY.pack(min(max(int(self._clock() if now is None else now), 0),
                                  _MAX_EXPIRY))
        env = self._environment()
        removed = 0
        while True:
            batch = 0
            with self._write_lock, env.begin(write=True, db=self._ids) as txn:
                cursor = txn.cursor()
                positioned = cursor.first()
                while positioned and batch < PURGE_BATCH and cursor.key()[:8] < cutoff:
                    cursor.delete()  # moves to the next id, or past the last one
                    batch += 1
                    positioned = bool(cursor.key())
            removed += batch
            if batch < PURGE_BATCH:
                return removed

    def close(self) -> None:
        """Close this process's handle (a forked child's inherited handle is left alone)."""
        with self._open_lock:
            env, self._env = self._env, None
            if env is not None and self._pid == os.getpid():
                env.close()

    def _environment(self) -> lmdb.Environment:
        env = self._env
        if env is not None and self._pid == os.getpid():
            return env
        with self._open_lock:
            if self._env is None or self._pid != os.getpid():  # never use a handle across fork
                try:
                    env, horizon = self._open()
                    self._ids = env.open_db(b"ids")
                except (lmdb.Error, OSError) as exc:
                    log.error("replay store %s cannot be opened: %s", self.path, exc)
                    raise PeerAuthError(Reason.REPLAY_UNDECIDABLE,
                                        "replay store unavailable") from None
                self._env, self._horizon = env, horizon
                self._pid = os.getpid()
            return self._env

    def _open(self) -> tuple[lmdb.Environment, float]:
        """Open the directory, first discarding contents a host crash may have damaged.

        Runs under an exclusive ``flock``, so processes starting together agree on one reset.
        """
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.path / "open.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            boot_id, boot_time = self._boot()
            state = self._read_state()
            data = self.path / "data.mdb"
            if state is None and not data.exists():
                horizon = 0.0  # a new store: no token was ever accepted with it
            elif state is None:
                horizon = self._reset(f"{self.path}: no readable {HOST_FILE}", self._clock())
            elif state[0] != boot_id:
                # written during an earlier boot: its last commits may be lost. Every token
                # it saw was accepted before the crash, so before this boot began.
                horizon = self._reset(f"{self.path}: written before the host restarted",
                                      max(boot_time, state[1]) or self._clock())
            else:
                horizon = state[1]
            env = self._lmdb()  # a failure here is the disk's: refuse, do not reset
            if state is None or state[0] != boot_id or state[1] != horizon:
                self._write_state(boot_id, horizon)
            return env, horizon

    def _lmdb(self) -> lmdb.Environment:
        return lmdb.open(str(self.path), map_size=MAP_SIZE, subdir=True, max_dbs=1,
                         sync=False, metasync=False, readahead=False, writemap=True, mode=0o600)

    def _reset(self, why: str, horizon: float) -> float:
        log.warning("replay store %s; starting empty, refusing tokens issued before %s",
                    why, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(horizon)))
        for name in ("data.mdb", "lock.mdb"):
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        return horizon

    def _read_state(self) -> tuple[str, float] | None:
        try:
            state = json.loads((self.path / HOST_FILE).read_text())
            return str(state["boot_id"]), float(state["horizon"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_state(self, boot_id: str, horizon: float) -> None:
        tmp = self.path / f"{HOST_FILE}.tmp"
        tmp.write_text(json.dumps({"boot_id": boot_id, "horizon": horizon}))
        os.replace(tmp, self.path / HOST_FILE)
