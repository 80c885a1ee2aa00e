"""The CLI through Click's runner: init, authority, credential import, status, error lines."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from node.cli import cli


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def authority(tmp_path):
    home = tmp_path / "auth"
    out = run("authority", "init", "--home", str(home), "--name", "Space").output
    return home, re.search(r"did:\s+(\S+)", out).group(1), \
        re.search(r"public key:\s+(\S+)", out).group(1)


def init_node(tmp_path, db_url, authority=None, name="n1", port=18201):
    args = ["init", "--home", str(tmp_path / name), "--participant-id", f"BPN-{name}",
            "--name", name, "--url", f"http://127.0.0.1:{port}", "--database-url", db_url]
    if authority is not None:
        args += ["--authority-did", authority[1], "--authority-key", authority[2]]
    out = run(*args).output
    return re.search(r"did:\s+(\S+)", out).group(1), re.search(r"api key:\s+(\S+)", out).group(1)


def test_init_prints_did_and_key_once(tmp_path, db_url):
    did, api_key = init_node(tmp_path, db_url)
    assert did == "did:web:127.0.0.1%3A18201"
    assert api_key.startswith("ask_")
    home = tmp_path / "n1"
    assert api_key not in (home / "autospace.toml").read_text()
    again = run("init", "--home", str(home), "--participant-id", "x", "--name", "x", "--url",
                "http://127.0.0.1:1", ok=False)
    assert again.exit_code == 1 and "already" in again.output
    assert "Traceback" not in again.output


def test_init_rejects_bad_url_in_one_line(tmp_path):
    result = run("init", "--home", str(tmp_path / "x"), "--participant-id", "p", "--name", "n",
                 "--url", "ftp://nowhere", ok=False)
    assert result.exit_code == 1
    assert result.output.startswith("Error: public_url")
    assert not (tmp_path / "x" / "autospace.toml").exists()


def test_did_key_authority_admit_import_status(tmp_path, db_url, authority):
    auth_home, auth_did, _ = authority
    assert auth_did.startswith("did:key:z6Mk")
    did, _ = init_node(tmp_path, db_url, authority)
    cred = tmp_path / "cred.jwt"
    run("authority", "admit", "--home", str(auth_home), "--did", did, "--participant-id",
        "BPN-n1", "--role", "supplier", "--region", "CN", "--valid-days", "10", "--out", str(cred))
    assert "BPN-n1" in run("authority", "members", "--home", str(auth_home)).output
    out = run("credential", "import", "--home", str(tmp_path / "n1"), str(cred)).output
    assert "supplier" in out and auth_did in out
    status = json.loads(run("status", "--home", str(tmp_path / "n1"), "--json").output)
    assert status["did"] == did and status["credential"]["valid"] is True
    assert status["credential"]["role"] == "supplier"
    assert status["database"]["reachable"] is True and status["database"]["apiKeys"] == 1
    human = run("status", "--home", str(tmp_path / "n1")).output
    assert "supplier" in human and did in human
    revoked = run("authority", "revoke", "--home", str(auth_home), "--did", did).output
    assert "revoked" in revoked
    assert "BPN-n1" not in run("authority", "members", "--home", str(auth_home)).output


def test_credential_for_another_node_is_refused(tmp_path, db_url, authority):
    auth_home = authority[0]
    init_node(tmp_path, db_url, authority)
    cred = tmp_path / "other.jwt"
    run("authority", "admit", "--home", str(auth_home), "--did", "did:web:other.example",
        "--participant-id", "X", "--role", "oem", "--out", str(cred))
    result = run("credential", "import", "--home", str(tmp_path / "n1"), str(cred), ok=False)
    assert result.exit_code == 1 and "is for did:web:other.example" in result.output
    assert not (tmp_path / "n1" / "credential.jwt").exists()


def test_credential_signed_by_another_authority_is_refused(tmp_path, db_url, authority):
    init_node(tmp_path, db_url, authority)
    rogue = tmp_path / "rogue"
    run("authority", "init", "--home", str(rogue), "--name", "Rogue")
    cred = tmp_path / "rogue.jwt"
    run("authority", "admit", "--home", str(rogue), "--did", "did:web:127.0.0.1%3A18201",
        "--participant-id", "BPN-n1", "--role", "oem", "--out", str(cred))
    result = run("credential", "import", "--home", str(tmp_path / "n1"), str(cred), ok=False)
    assert "untrusted_issuer" in result.output


def test_admit_validates_role_and_days(tmp_path, authority):
    out = tmp_path / "c.jwt"
    bad_role = run("authority", "admit", "--home", str(authority[0]), "--did",
                   "did:web:a.example", "--participant-id", "A", "--role", "king", "--out",
                   str(out), ok=False)
    assert bad_role.exit_code == 2
    bad_days = run("authority", "admit", "--home", str(authority[0]), "--did",
                   "did:web:a.example", "--participant-id", "A", "--role", "oem",
                   "--valid-days", "0", "--out", str(out), ok=False)
    assert bad_days.exit_code == 1 and "valid-days" in bad_days.output


def test_status_without_home(tmp_path):
    result = run("status", "--home", str(tmp_path / "none"), ok=False)
    assert result.exit_code == 1 and "autospace init" in result.output
