"""Helpers building in-process cohorts for the federated tests."""

from __future__ import annotations

import os

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federated.graph import choose_parameters
from federated.secagg_client import SecAggClient
from federated.vocabulary import SecAggConfig

COORDINATOR = "coordinator"
TASK = "task-1"


def identities(n: int) -> tuple[list[str], dict[str, Ed25519PrivateKey], dict[str, bytes]]:
    """Participant ids, their Ed25519 signing keys and public keys."""
    ids = [f"p{i:03d}" for i in range(n)]
    keys = {pid: Ed25519PrivateKey.generate() for pid in ids}
    return ids, keys, {pid: k.public_key().public_bytes_raw() for pid, k in keys.items()}


def config(ids: list[str], d: int, bits: int = 32, degree: int | None = None,
           threshold: int | None = None, max_dropout: float = 0.3) -> SecAggConfig:
    """A round configuration with graph parameters chosen as the coordinator would."""
    params = choose_parameters(len(ids), max_dropout)
    degree = params.degree if degree is None else degree
    threshold = (degree + 1) // 2 + 1 if threshold is None else threshold
    return SecAggConfig(tuple(sorted(ids)), d, bits, degree, threshold, os.urandom(32))


def clients(ids: list[str], keys: dict, pubs: dict, inputs: dict[str, np.ndarray],
            round_number: int = 0) -> dict[str, SecAggClient]:
    """One SecAgg client per participant, each holding its input."""
    out = {}
    for pid in ids:
        c = SecAggClient(pid, COORDINATOR, TASK, round_number, keys[pid].sign, pubs)
        c.set_input(inputs[pid])
        out[pid] = c
    return out
