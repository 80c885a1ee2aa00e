"""``autospace policy eval`` / ``lint``: exit 0 permit, 3 deny, 2 bad input; lint findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli import cli
from policies.jsonld import ODRL_CONTEXT_URL

POLICY = {
    "@context": ODRL_CONTEXT_URL,
    "@type": "Set",
    "uid": "urn:p:1",
    "permission": [
        {
            "uid": "urn:r:1",
            "action": "use",
            "target": "urn:asset:x",
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
            ],
        }
    ],
}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, doc in {
        "policy": POLICY,
        "ok": {
            "assignee": "urn:a",
            "action": "read",
            "target": "urn:asset:x",
            "context": {"purpose": "research"},
        },
        "no": {
            "assignee": "urn:a",
            "action": "read",
            "target": "urn:asset:x",
            "context": {"purpose": "ads"},
        },
        "state": {"now": "2025-01-01T00:00:00Z"},
    }.items():
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(doc))
        out[name] = p
    return out


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_eval_permit_prints_json_and_exits_0(files) -> None:
    r = run(
        "policy",
        "eval",
        "--policy",
        str(files["policy"]),
        "--request",
        str(files["ok"]),
        "--state",
        str(files["state"]),
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (
        out["decision"] == "permit" and out["rules"][0]["constraints"][0]["result"] == "satisfied"
    )


def test_eval_deny_exits_3_and_human_tree(files) -> None:
    r = run(
        "policy", "eval", "--policy", str(files["policy"]), "--request", str(files["no"]), "--human"
    )
    assert r.exit_code == 3
    assert r.output.startswith("DENY") and "odrl:purpose odrl:eq research" in r.output


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"@context": "https://nowhere.example/c", "permission": []}),
        json.dumps(
            {
                "@context": ODRL_CONTEXT_URL,
                "permission": [
                    {
                        "action": "use",
                        "constraint": [
                            {"leftOperand": "purpose", "operator": "like", "rightOperand": "x"}
                        ],
                    }
                ],
            }
        ),
    ],
)
def test_eval_bad_policy_exits_2_with_one_line(files, tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    r = run("policy", "eval", "--policy", str(bad), "--request", str(files["ok"]))
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "Traceback" not in r.output


def test_eval_missing_file_and_bad_request(files, tmp_path: Path) -> None:
    r = run(
        "policy", "eval", "--policy", str(tmp_path / "missing.json"), "--request", str(files["ok"])
    )
    assert r.exit_code == 2 and "cannot read the policy file" in r.output
    bad = tmp_path / "req.json"
    bad.write_text(json.dumps({"action": 5}))
    r = run("policy", "eval", "--policy", str(files["policy"]), "--request", str(bad))
    assert r.exit_code == 2 and "request" in r.output


def test_eval_profile_and_scope(files) -> None:
    r = run(
        "policy",
        "eval",
        "--policy",
        str(files["policy"]),
        "--request",
        str(files["ok"]),
        "--profile",
        "catenax",
        "--scope",
        "catalog",
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["scope"] == "catalog" and out["profile"] == "catenax"
    r = run(
        "policy",
        "eval",
        "--policy",
        str(files["policy"]),
        "--request",
        str(files["ok"]),
        "--profile",
        "nope",
    )
    assert r.exit_code == 2


def test_lint_reports_conflict_and_profile_violations(tmp_path: Path) -> None:
    doc = {
        "@context": ODRL_CONTEXT_URL,
        "@type": "Set",
        "uid": "urn:p:2",
        "permission": [{"uid": "urn:r:p", "action": "use", "target": "urn:asset:x"}],
        "prohibition": [{"uid": "urn:r:q", "action": "distribute", "target": "urn:asset:x"}],
    }
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc))
    r = run("policy", "lint", str(f))
    assert r.exit_code == 1 and "can both apply" in r.output
    r = run("policy", "lint", str(f), "--profile", "catenax", "--json")
    findings = json.loads(r.output)["findings"]
    assert any("FrameworkAgreement" in x["message"] for x in findings)


def test_lint_clean_policy_and_disjoint_rules(tmp_path: Path) -> None:
    doc = {
        "@context": ODRL_CONTEXT_URL,
        "@type": "Set",
        "uid": "urn:p:3",
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {
                        "leftOperand": "dateTime",
                        "operator": "lt",
                        "rightOperand": {"@value": "2025-01-01", "@type": "xsd:date"},
                    }
                ],
            }
        ],
        "prohibition": [
            {
                "action": "use",
                "constraint": [
                    {
                        "leftOperand": "dateTime",
                        "operator": "gteq",
                        "rightOperand": {"@value": "2025-01-01", "@type": "xsd:date"},
                    }
                ],
            }
        ],
    }
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc))
    r = run("policy", "lint", str(f))
    assert r.exit_code == 0 and "no findings" in r.output
    bad = tmp_path / "x.json"
    bad.write_text("[")
    assert run("policy", "lint", str(bad)).exit_code == 2
