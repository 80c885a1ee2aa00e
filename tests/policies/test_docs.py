"""The request and state examples in docs/policies.md are real inputs of the engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

from policies import evaluate, parse_request, parse_state
from policies.jsonld import ODRL_CONTEXT_URL

DOC = Path(__file__).resolve().parents[2] / "docs" / "policies.md"


def _json_blocks() -> list[dict]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)]


def test_documented_request_and_state_parse_and_decide() -> None:
    request, state = _json_blocks()
    req = parse_request(request)
    st = parse_state(state)
    assert req.claims["participantId"] == "BPNL000000000001" and st.count == 3
    policy = {
        "@context": ODRL_CONTEXT_URL,
        "@type": "Set",
        "uid": "urn:p",
        "permission": [
            {
                "action": "use",
                "target": "urn:collection:c",
                "constraint": [
                    {"leftOperand": "count", "operator": "lteq", "rightOperand": 4},
                    {
                        "leftOperand": "purpose",
                        "operator": "eq",
                        "rightOperand": {"@id": "https://w3id.org/dpv#ResearchAndDevelopment"},
                    },
                ],
            }
        ],
    }
    state_here = dict(state, memberships={"urn:asset:battery-passport-42": ["urn:collection:c"]})
    assert evaluate(policy, request, state_here).permitted
    assert not evaluate(policy, request, dict(state_here, count=4)).permitted
