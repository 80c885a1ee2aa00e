"""Configuration: file values, environment overrides, types, validation, extension sections."""

from pathlib import Path

import pytest

from node.config import ConfigError, NodeConfig

BASE = {"participant_id": "BPNL1", "name": "One", "public_url": "https://one.example"}


def load(data=None, env=None, home=Path("/srv/node")):
    return NodeConfig.from_dict(home, {**BASE, **(data or {})}, env or {})


def test_defaults():
    c = load()
    assert c.did == "did:web:one.example"
    assert c.db_url == "sqlite:////srv/node/autospace.sqlite"
    assert (c.server.port, c.server.workers, c.server.management_port) == (8181, 2, 0)
    assert c.trust.clock_skew_seconds == 30 and c.trust.max_token_lifetime_seconds == 300
    assert c.trust.allow_http_hosts == ["127.0.0.1", "localhost", "::1"]
    assert c.authority_did == "" and c.authority_key is None


def test_environment_overrides_every_kind_of_key():
    env = {
        "AUTOSPACE_DATABASE_URL": "postgresql://u@db/x",
        "AUTOSPACE_SERVER_PORT": "9000",
        "AUTOSPACE_TRUST_REGISTRY_REFRESH_SECONDS": "2.5",
        "AUTOSPACE_LOGGING_JSON": "false",
        "AUTOSPACE_TRUST_ALLOW_HTTP_HOSTS": "127.0.0.1, node-a",
        "AUTOSPACE_NAME": "Renamed",
    }
    c = load({"server": {"port": 8000}}, env)
    assert c.database_url == "postgresql://u@db/x"
    assert c.server.port == 9000  # env beats file
    assert c.trust.registry_refresh_seconds == 2.5
    assert c.logging.json is False
    assert c.trust.allow_http_hosts == ["127.0.0.1", "node-a"]
    assert c.name == "Renamed"


def test_authority_url_gives_the_anchor_did():
    c = load({"trust": {"authority_url": "http://127.0.0.1:8700"}})
    assert c.authority_did == "did:web:127.0.0.1%3A8700"


@pytest.mark.parametrize(
    ("data", "env", "key"),
    [
        ({"server": {"port": "80"}}, {}, "server.port"),
        ({}, {"AUTOSPACE_SERVER_PORT": "eighty"}, "server.port"),
        ({}, {"AUTOSPACE_LOGGING_JSON": "maybe"}, "logging.json"),
        ({"server": {"prot": 1}}, {}, "server.prot"),
        ({"colour": "red"}, {}, "colour"),
        ({"public_url": "ftp://x"}, {}, "public_url"),
        ({"participant_id": "has space"}, {}, "participant_id"),
        ({"trust": {"authority_public_key": "short"}}, {}, "trust.authority_public_key"),
        ({"trust": {"max_token_lifetime_seconds": 900}}, {}, "trust.max_token_lifetime_seconds"),
        ({"server": {"port": 70000}}, {}, "server.port"),
        ({"server": {"port": 8000, "management_port": 8000}}, {}, "server.management_port"),
        ({"logging": {"level": "loud"}}, {}, "logging.level"),
        ({"trust": {"authority_did": "did:example:x"}}, {}, "trust.authority_did"),
    ],
)
def test_invalid_values_name_the_key(data, env, key):
    with pytest.raises(ConfigError) as e:
        load(data, env)
    assert e.value.key == key
    assert key in str(e.value)


def test_env_errors_name_the_variable():
    with pytest.raises(ConfigError) as e:
        load({}, {"AUTOSPACE_SERVER_WORKERS": "many"})
    assert e.value.source == "AUTOSPACE_SERVER_WORKERS"


def test_required_keys():
    with pytest.raises(ConfigError, match="participant_id"):
        NodeConfig.from_dict(Path("/x"), {"name": "n", "public_url": "https://a.example"}, {})


def test_extension_sections_are_kept_with_env_overrides():
    c = load({"ledger": {"chain": "in-process", "batch": 10}},
             {"AUTOSPACE_LEDGER_BATCH": "20", "AUTOSPACE_LEDGER_RPC_URL": "http://127.0.0.1:8545",
              "AUTOSPACE_FEDERATED_ROUNDS": "3"})
    assert c.section("ledger") == {"chain": "in-process", "batch": 20,
                                   "rpc_url": "http://127.0.0.1:8545"}
    assert c.section("federated") == {"rounds": 3}
    assert c.section("policy") == {}
    assert c.section("server")["port"] == 8181


def test_hex_environment_values_stay_text():
    """Contract addresses are ``0x…``: TOML would read them as integers."""
    address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    c = load({}, {"AUTOSPACE_LEDGER_CONTRACT": address, "AUTOSPACE_LEDGER_CONFIRMATIONS": "2"})
    assert c.section("ledger") == {"contract": address, "confirmations": 2}


def test_file_round_trip(tmp_path):
    import tomli_w

    c = load({"trust": {"authority_url": "http://127.0.0.1:1"}}, home=tmp_path)
    (tmp_path / "autospace.toml").write_text(tomli_w.dumps(c.to_toml_dict()))
    again = NodeConfig.load(tmp_path, env={})
    assert again.to_toml_dict() == c.to_toml_dict()
    assert "ledger" in again.to_toml_dict()  # extension sections are shown to operators


def test_missing_home_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="autospace init"):
        NodeConfig.load(tmp_path / "nowhere", env={})
    (tmp_path / "autospace.toml").write_text("participant_id = ")
    with pytest.raises(ConfigError):
        NodeConfig.load(tmp_path, env={})
