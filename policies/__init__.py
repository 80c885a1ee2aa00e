"""ODRL 2.2 usage control that fails closed (a library: no import of node/ or connectors/).

Public interface::

    parse_policy(doc, *, resolve=None) -> Policy          # raises PolicyError (all reasons)
    compile_policy(policy, profile="odrl", scope="usage", options=None) -> CompiledPolicy
    evaluate(policy, request, state=None, *, scope, profile, options) -> Decision
    decide(compiled, request, state) -> Decision           # fast path, inputs parsed
    normalize(policy) -> dict                              # canonical form for comparison
    validate_policy(policy, profile, kind="access"|"usage") -> list[str]
    lint_policy(policy, profile=None, kind="usage") -> list[dict]

Stateful usage control (counters, duties, export log, monitor) is ``policies.usage.UsageStore``;
offline JSON-LD for the whole project is ``policies.jsonld``. See docs/policies.md.
"""

from __future__ import annotations

from policies.compile import CompiledPolicy, Flags
from policies.compile import compile_policy as _compile
from policies.decision import Decision, RuleReport
from policies.engine import decide, evaluate
from policies.errors import PolicyError, RequestError
from policies.jsonld import JsonLdError, compact, expand, register_context
from policies.model import Policy, Rule
from policies.normalize import normalize
from policies.parse import parse_policy
from policies.profiles import PROFILES, SCOPES, Profile, get_profile
from policies.request import Request, State, parse_request, parse_state
from policies.validate import lint_policy, validate_policy


def compile_policy(
    policy: Policy | dict,
    profile: str | Profile = "odrl",
    scope: str = "usage",
    options: dict | None = None,
) -> CompiledPolicy:
    """Parse (if needed) and compile a policy for a profile and scope.

    Raises:
        PolicyError: the document is not a valid policy.
        ValueError: unknown profile or scope.
    """
    from policies.engine import flags_from_options

    if not isinstance(policy, Policy):
        policy = parse_policy(policy)
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    flags, _ = flags_from_options(options)
    return _compile(policy, prof, scope, flags)


__all__ = [
    "PROFILES",
    "SCOPES",
    "CompiledPolicy",
    "Decision",
    "Flags",
    "JsonLdError",
    "Policy",
    "PolicyError",
    "Profile",
    "Request",
    "RequestError",
    "Rule",
    "RuleReport",
    "State",
    "compact",
    "compile_policy",
    "decide",
    "evaluate",
    "expand",
    "get_profile",
    "lint_policy",
    "normalize",
    "parse_policy",
    "parse_request",
    "parse_state",
    "register_context",
    "validate_policy",
]
