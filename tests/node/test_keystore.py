"""The key store: file modes, signing, public forms, EVM keys, no private key leaks."""

import os
import pickle
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connectors.identity.jwk import b64url_decode
from connectors.identity.signer import Signer
from node.keystore import IDENTITY_KEY_FILE, KEYS_DIR, KeyStore, KeyStoreError


def test_create_sign_and_public_forms(tmp_path):
    keys = KeyStore.create(tmp_path)
    assert isinstance(keys, Signer)
    path = tmp_path / KEYS_DIR / IDENTITY_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sig = keys.sign(b"data")
    Ed25519PublicKey.from_public_bytes(keys.public_key_bytes()).verify(sig, b"data")
    jwk = keys.public_jwk()
    assert jwk["kid"] == keys.key_id and "d" not in jwk
    assert b64url_decode(jwk["x"]) == keys.public_key_bytes()
    assert KeyStore(tmp_path).key_id == keys.key_id  # stable across loads


def test_private_key_never_appears_in_public_surfaces(tmp_path):
    keys = KeyStore.create(tmp_path)
    pem = (tmp_path / KEYS_DIR / IDENTITY_KEY_FILE).read_text()
    body = "".join(pem.splitlines()[1:-1])
    for text in (repr(keys), str(keys.public_jwk()), keys.key_id):
        assert body not in text
    public = {n for n in dir(keys) if not n.startswith("_")}
    assert public == {"create", "evm_private_key", "home", "key_id", "public_jwk",
                      "public_key_bytes", "sign"}
    with pytest.raises(TypeError):
        pickle.dumps(keys)


def test_refuses_to_overwrite_and_loose_permissions(tmp_path):
    KeyStore.create(tmp_path)
    with pytest.raises(KeyStoreError, match="already exists"):
        KeyStore.create(tmp_path)
    os.chmod(tmp_path / KEYS_DIR / IDENTITY_KEY_FILE, 0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        KeyStore(tmp_path)


def test_missing_and_garbage_keys(tmp_path):
    with pytest.raises(KeyStoreError, match="does not exist"):
        KeyStore(tmp_path)
    path = tmp_path / KEYS_DIR / IDENTITY_KEY_FILE
    path.parent.mkdir()
    path.write_text("not a key")
    path.chmod(0o600)
    with pytest.raises(KeyStoreError, match="PEM"):
        KeyStore(tmp_path)


def test_evm_key_is_created_once_and_valid(tmp_path):
    keys = KeyStore.create(tmp_path)
    first = keys.evm_private_key()
    assert len(first) == 32 and first == KeyStore(tmp_path).evm_private_key()
    assert keys.evm_private_key("other") != first
    order = int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16)
    assert 0 < int.from_bytes(first, "big") < order  # a valid secp256k1 scalar
    evm_file = tmp_path / KEYS_DIR / "evm-anchor.secp256k1"
    assert stat.S_IMODE(evm_file.stat().st_mode) == 0o600
    with pytest.raises(KeyStoreError):
        keys.evm_private_key("../escape")
