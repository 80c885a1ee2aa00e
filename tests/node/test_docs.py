"""docs/node.md documents every configuration key with its variable and every refusal reason."""

import dataclasses
from pathlib import Path

from connectors.identity.errors import Reason
from node.config import SECTIONS, NodeConfig

DOC = (Path(__file__).resolve().parents[2] / "docs" / "node.md").read_text()


def test_every_key_and_variable_is_documented():
    keys = [(f.name, f"AUTOSPACE_{f.name.upper()}") for f in dataclasses.fields(NodeConfig)
            if f.name not in {"home", "extra", "_env", *SECTIONS}]
    for section, cls in SECTIONS.items():
        keys += [(f"{section}.{f.name}", f"AUTOSPACE_{section.upper()}_{f.name.upper()}")
                 for f in dataclasses.fields(cls)]
    missing = [k for k, var in keys if f"`{k}`" not in DOC or f"`{var}`" not in DOC]
    assert not missing


def test_every_refusal_reason_is_documented():
    assert [r.value for r in Reason if f"`{r.value}`" not in DOC] == []
