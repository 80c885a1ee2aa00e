"""Node configuration: ``HOME/autospace.toml`` overridden by ``AUTOSPACE_*`` variables.

Top-level keys are overridden by ``AUTOSPACE_<KEY>`` (``AUTOSPACE_DATABASE_URL``),
keys of a section by ``AUTOSPACE_<SECTION>_<KEY>`` (``AUTOSPACE_SERVER_PORT``).
Values are typed and validated on load; any problem is one :class:`ConfigError`
naming the key, its source and what was expected. Sections this module does not
know (``[ledger]``, ``[policy]``, ``[federated]``...) are kept as dictionaries for
the packages that own them: :meth:`NodeConfig.section`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from connectors.identity.did import DEFAULT_HTTP_HOSTS, did_web_from_url
from connectors.identity.errors import DidError
from connectors.identity.jwk import b64url_decode

CONFIG_FILE = "autospace.toml"
ENV_PREFIX = "AUTOSPACE_"
#: Sections other packages own; written empty by ``autospace init`` so operators see them.
EXTENSION_SECTIONS = ("ledger", "policy", "federated", "dataplane")
_PARTICIPANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class ConfigError(ValueError):
    """The configuration is invalid: ``key`` (dotted), where it came from, what is wrong."""

    def __init__(self, key: str, message: str, source: str = CONFIG_FILE) -> None:
        super().__init__(f"{key} ({source}): {message}")
        self.key = key
        self.source = source


@dataclass
class ServerConfig:
    """Where the HTTP server listens; the management API may get its own address."""

    host: str = "127.0.0.1"
    port: int = 8181
    management_host: str = ""
    management_port: int = 0  # 0: the management API shares host:port
    workers: int = 2
    threads: int = 4
    timeout_seconds: int = 30


@dataclass
class TrustConfig:
    """The trust anchor (dataspace authority) and how peers are verified."""

    authority_did: str = ""
    authority_public_key: str = ""  # base64url raw Ed25519 key; pins the authority key
    authority_url: str = ""  # base URL of the authority; gives its did:web if no DID is set
    registry_url: str = ""  # overrides the registry location named in the authority's DID
    registry_refresh_seconds: float = 60.0
    did_cache_seconds: float = 300.0
    clock_skew_seconds: int = 30
    max_token_lifetime_seconds: int = 300
    allow_http_hosts: list[str] = field(default_factory=lambda: list(DEFAULT_HTTP_HOSTS))
    # where used token ids are kept: "local" (an LMDB file shared by this host's processes),
    # "database" (shared by every host using the database) or "auto" (local for SQLite)
    replay_store: str = "auto"


REPLAY_STORES = ("auto", "local", "database")


@dataclass
class LimitsConfig:
    max_body_bytes: int = 1024 * 1024
    max_json_depth: int = 32


@dataclass
class LoggingConfig:
    level: str = "info"
    json: bool = True
    access_log: bool = True


@dataclass
class PeerConfig:
    """Outgoing peer calls."""

    timeout_seconds: float = 10.0
    retries: int = 2
    backoff_seconds: float = 0.2
    token_lifetime_seconds: int = 60


@dataclass
class WorkerConfig:
    """Background work: in the server process (embedded) or separate ``autospace worker``."""

    embedded: bool = True
    tick_seconds: float = 1.0


SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "trust": TrustConfig,
    "limits": LimitsConfig,
    "logging": LoggingConfig,
    "peer": PeerConfig,
    "worker": WorkerConfig,
}


@dataclass
class NodeConfig:
    """The whole configuration of one node (see ``docs/node.md`` for every key)."""

    home: Path
    participant_id: str
    name: str
    public_url: str
    region: str = "CN"
    database_url: str = ""  # empty: sqlite:///HOME/autospace.sqlite
    server: ServerConfig = field(default_factory=ServerConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    peer: PeerConfig = field(default_factory=PeerConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    _env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def did(self) -> str:
        """The node's did:web, derived from ``public_url``."""
        return did_web_from_url(self.public_url)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'autospace.sqlite'}"

    @property
    def authority_did(self) -> str:
        """DID of the trust anchor ('' when none is configured)."""
        if self.trust.authority_did:
            return self.trust.authority_did
        if self.trust.authority_url:
            return did_web_from_url(self.trust.authority_url)
        return ""

    @property
    def authority_key(self) -> bytes | None:
        return b64url_decode(self.trust.authority_public_key) if self.trust.authority_public_key \
            else None

    def section(self, name: str) -> dict[str, Any]:
        """An extension section (e.g. ``ledger``) with ``AUTOSPACE_<NAME>_<KEY>`` overrides.

        Env values are read as TOML literals (``3``, ``true``, ``"x"``, ``[1, 2]``) and
        otherwise taken as strings.
        """
        if name in SECTIONS:
            return dataclasses.asdict(getattr(self, name))
        values = dict(self.extra.get(name, {}))
        prefix = f"{ENV_PREFIX}{name.upper()}_"
        for var, raw in self._env.items():
            if var.startswith(prefix):
                values[var[len(prefix):].lower()] = _literal(raw)
        return values

    @classmethod
    def load(cls, home: Path | str, env: Mapping[str, str] | None = None) -> NodeConfig:
        """Read ``HOME/autospace.toml`` and apply environment overrides."""
        home = Path(home)
        env = os.environ if env is None else env
        path = home / CONFIG_FILE
        if not path.exists():
            raise ConfigError("home", f"{path} does not exist; run `autospace init` first", "home")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("file", str(exc)) from None
        return cls.from_dict(home, data, env)

    @classmethod
    def from_dict(cls, home: Path, data: Mapping[str, Any], env: Mapping[str, str]) -> NodeConfig:
        """Build and validate a configuration from parsed TOML plus ``env``."""
        top_hints = typing.get_type_hints(cls)
        scalars = {f.name for f in dataclasses.fields(cls)} - set(SECTIONS) - {
            "home", "extra", "_env"
        }
        kwargs: dict[str, Any] = {}
        extra: dict[str, dict[str, Any]] = {}
        for key, value in data.items():
            if key in SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(key, "must be a [section]")
            elif isinstance(value, dict):
                extra[key] = dict(value)
            elif key in scalars:
                kwargs[key] = _coerce(key, value, top_hints[key], CONFIG_FILE)
            else:
                raise ConfigError(key, "unknown key")
        for key in scalars:
            var = f"{ENV_PREFIX}{key.upper()}"
            if var in env:
                kwargs[key] = _coerce(key, env[var], top_hints[key], var, from_env=True)
        for key in ("participant_id", "name", "public_url"):
            if not kwargs.get(key):
                raise ConfigError(key, "is required")
        for name, section_cls in SECTIONS.items():
            kwargs[name] = _section(name, section_cls, data.get(name, {}), env)
        config = cls(home=home, extra=extra, _env=dict(env), **kwargs)
        _validate(config)
        return config

    def to_toml_dict(self) -> dict[str, Any]:
        """The file form of this configuration (used by ``autospace init``)."""
        out: dict[str, Any] = {
            "participant_id": self.participant_id,
            "name": self.name,
            "public_url": self.public_url,
            "region": self.region,
            "database_url": self.database_url,
        }
        for name in SECTIONS:
            out[name] = dataclasses.asdict(getattr(self, name))
        for name in EXTENSION_SECTIONS:
            out[name] = dict(self.extra.get(name, {}))
        for name, values in self.extra.items():
            out.setdefault(name, dict(values))
        return out


def _section(name: str, cls: type, values: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}", "unknown key")
        kwargs[key] = _coerce(f"{name}.{key}", value, hints[key], CONFIG_FILE)
    for key in known:
        var = f"{ENV_PREFIX}{name.upper()}_{key.upper()}"
        if var in env:
            kwargs[key] = _coerce(f"{name}.{key}", env[var], hints[key], var, from_env=True)
    return cls(**kwargs)


def _coerce(key: str, value: Any, hint: Any, source: str, *, from_env: bool = False) -> Any:
    """Convert ``value`` to the field type; env values arrive as text."""
    try:
        if hint is bool:
            if from_env and isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if not isinstance(value, bool):
                raise ValueError
            return value
        if hint is int:
            if isinstance(value, bool) or (not from_env and not isinstance(value, int)):
                raise ValueError
            return int(value)
        if hint is float:
            if isinstance(value, bool) or (not from_env and not isinstance(value, int | float)):
                raise ValueError
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise ValueError
            return value
        if typing.get_origin(hint) is list:
            if from_env and isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError
            return list(value)
    except ValueError:
        pass
    else:
        raise ConfigError(key, f"unsupported type {hint}", source)
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(key, f"expected {name}, got {value!r}", source)


def _literal(raw: str) -> Any:
    """Parse an environment value as a TOML literal, keeping hex text (``0x…``) as a string.

    Chain addresses and keys are written ``0x…``; TOML would read them as integers.
    """
    if raw[:2].lower() == "0x":
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _validate(c: NodeConfig) -> None:
    if not _PARTICIPANT_ID.match(c.participant_id):
        raise ConfigError("participant_id", "letters, digits and ._:- only, at most 128")
    try:
        c.did  # noqa: B018 - derivation validates the URL
    except DidError as exc:
        raise ConfigError("public_url", str(exc)) from None
    try:
        make_url(c.db_url)
    except Exception as exc:  # sqlalchemy raises ArgumentError or ValueError
        raise ConfigError("database_url", f"not a database URL: {exc}") from None
    s = c.server
    for key, port in (("server.port", s.port), ("server.management_port", s.management_port)):
        if not 0 <= port <= 65535:
            raise ConfigError(key, f"port out of range: {port}")
    if s.management_port and s.management_port == s.port and \
            (s.management_host or s.host) == s.host:
        raise ConfigError("server.management_port", "must differ from server.port")
    if s.workers < 1 or s.threads < 1:
        raise ConfigError("server.workers", "workers and threads must be at least 1")
    t = c.trust
    if t.authority_public_key:
        try:
            if len(b64url_decode(t.authority_public_key)) != 32:
                raise ValueError
        except ValueError:
            raise ConfigError("trust.authority_public_key",
                              "must be a base64url raw 32-byte Ed25519 key") from None
        if not t.authority_did:
            raise ConfigError("trust.authority_did", "is required with authority_public_key")
    if t.authority_did and not t.authority_did.startswith(("did:web:", "did:key:")):
        raise ConfigError("trust.authority_did", "must be a did:web or did:key")
    if t.authority_url:
        try:
            did_web_from_url(t.authority_url)
        except DidError as exc:
            raise ConfigError("trust.authority_url", str(exc)) from None
    if not 0 < t.max_token_lifetime_seconds <= 300:
        raise ConfigError("trust.max_token_lifetime_seconds", "must be in 1..300")
    if not 0 <= t.clock_skew_seconds <= 300:
        raise ConfigError("trust.clock_skew_seconds", "must be in 0..300")
    if t.replay_store not in REPLAY_STORES:
        raise ConfigError("trust.replay_store", f"one of {', '.join(REPLAY_STORES)}")
    if t.registry_refresh_seconds <= 0 or t.did_cache_seconds < 0:
        raise ConfigError("trust.registry_refresh_seconds", "must be positive")
    if c.limits.max_body_bytes < 1024 or not 1 <= c.limits.max_json_depth <= 1000:
        raise ConfigError("limits", "max_body_bytes >= 1024 and max_json_depth in 1..1000")
    if c.logging.level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError("logging.level", "one of debug, info, warning, error")
    if not 0 < c.peer.token_lifetime_seconds <= 300:
        raise ConfigError("peer.token_lifetime_seconds", "must be in 1..300")
