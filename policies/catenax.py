"""Catena-X 2025-9 policy profile rules (written from the CX-0152 profile and its schemas).

Each left operand has the operators it allows, the form of its right operand (one value or
a list) and a check for each value. Which operands may appear where (access permission,
usage permission, prohibition, obligation) and which are mutually exclusive come from the
profile's policy rules. ``validate`` returns every violation as a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from policies.model import Constraint, LogicalConstraint, Policy, Rule
from policies.vocab import CX, ODRL, short

_BPNL = re.compile(r"^BPNL[0-9A-Z]{12}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
_POSITIVE = re.compile(r"^[1-9][0-9]*$")


def _one_of(*values: str) -> Callable[[str], bool]:
    allowed = frozenset(values)
    return lambda v: v in allowed


def _any_string(v: str) -> bool:
    return bool(v.strip())


USAGE_PURPOSES = [
    "cx.core.legalRequirementForThirdparty:1",
    "cx.core.industrycore:1",
    "cx.core.qualityNotifications:1",
    "cx.pcf.base:1",
    "cx.quality.base:1",
    "cx.dcm.base:1",
    "cx.puris.base:1",
    "cx.circular.dpp:1",
    "cx.circular.smc:1",
    "cx.circular.marketplace:1",
    "cx.circular.materialaccounting:1",
    "cx.bpdm.gate.upload:1",
    "cx.bpdm.gate.download:1",
    "cx.bpdm.pool:1",
    "cx.bpdm.vas.dataquality.upload:1",
    "cx.bpdm.vas.dataquality.download:1",
    "cx.bpdm.vas.bdv.upload:1",
    "cx.bpdm.vas.bdv.download:1",
    "cx.bpdm.vas.fpd.upload:1",
    "cx.bpdm.vas.fpd.download:1",
    "cx.bpdm.vas.swd.upload:1",
    "cx.bpdm.vas.swd.download:1",
    "cx.bpdm.vas.nps.upload:1",
    "cx.bpdm.vas.nps.download:1",
    "cx.ccm.base:1",
    "cx.bpdm.poolAll:1",
    "cx.logistics.base:1",
    "cx.engineering.base:1",
    "cx.materialaccounting.base:1",
    "cx.esdscom.base:1",
    "cx.ecu.base:1",
]
# The profile also admits purposes defined by use cases: "cx.<area>.<name>:<version>".
_PURPOSE_PATTERN = re.compile(r"^cx\.[A-Za-z0-9]+(\.[A-Za-z0-9]+)+:\d+$")
REGIONS = tuple(
    f"cx.region.{r}:1"
    for r in (
        "all",
        "europe",
        "northAmerica",
        "southAmerica",
        "africa",
        "asia",
        "oceania",
        "antarctica",
    )
)


def _purpose(v: str) -> bool:
    # Besides the listed purposes the profile admits individually agreed ones (any text).
    return v in USAGE_PURPOSES or bool(_PURPOSE_PATTERN.match(v)) or _any_string(v)


# left operand -> (operators, list-valued?, value check, human description of the format)
RULES: dict[str, tuple[tuple[str, ...], bool, Callable[[str], bool], str]] = {
    "FrameworkAgreement": (
        ("eq",),
        False,
        _one_of("DataExchangeGovernance:1.0"),
        "DataExchangeGovernance:1.0",
    ),
    "Membership": (("eq",), False, _one_of("active"), "active"),
    "BusinessPartnerNumber": (("isAnyOf", "isNoneOf"), True, _BPNL.match, "BPNL numbers"),
    "BusinessPartnerGroup": (("isAnyOf", "isNoneOf"), True, _any_string, "group names"),
    "UsagePurpose": (("isAnyOf",), True, _purpose, "Catena-X usage purposes"),
    "ContractReference": (("isAllOf",), True, _any_string, "contract references"),
    "AffiliatesRegion": (("isAnyOf",), True, _one_of(*REGIONS), "cx.region.* values"),
    "AffiliatesBpnl": (("isAnyOf",), True, _BPNL.match, "BPNL numbers"),
    "UsageRestriction": (
        ("isAllOf",),
        True,
        _one_of(
            "cx.thirdParty.forbidden:1",
            "cx.manipulation.forbidden:1",
            "cx.derivations.forbidden:1",
            "cx.extraordinaryAnalytics.forbidden:1",
            "cx.dataProviderRemoval.forbidden:1",
        ),
        "cx.*.forbidden:1 values",
    ),
    "DataFrequency": (
        ("eq",),
        False,
        _one_of("cx.dataFrequency.once:1", "cx.dataFrequency.unlimited:1"),
        "cx.dataFrequency.once:1 or cx.dataFrequency.unlimited:1",
    ),
    "VersionChanges": (
        ("eq",),
        False,
        _one_of("cx.versionChanges.minor:1", "cx.versionChanges.major:1"),
        "cx.versionChanges.minor:1 or cx.versionChanges.major:1",
    ),
    "ContractTermination": (
        ("eq",),
        False,
        _one_of("cx.data.deletion:1", "cx.data.keeping:1"),
        "cx.data.deletion:1 or cx.data.keeping:1",
    ),
    "ConfidentialInformationMeasures": (
        ("eq",),
        False,
        _one_of("cx.confidentiality.measures:1"),
        "cx.confidentiality.measures:1",
    ),
    "ConfidentialInformationSharing": (
        ("isAnyOf",),
        True,
        _one_of("cx.sharing.affiliates:1", "cx.sharing.managedLegalEntity:1"),
        "cx.sharing.* values",
    ),
    "ExclusiveUsage": (
        ("eq",),
        False,
        _one_of("cx.exclusiveUsage.dataConsumer:1"),
        "cx.exclusiveUsage.dataConsumer:1",
    ),
    "Warranty": (
        ("eq",),
        False,
        _one_of(
            "cx.warranty.none:1",
            "cx.warranty.contractReference:1",
            "cx.warranty.dataQualityIssues:1",
        ),
        "cx.warranty.* values",
    ),
    "WarrantyDurationMonths": (("eq",), False, _POSITIVE.match, "a positive number of months"),
    "WarrantyDefinition": (
        ("eq",),
        False,
        _one_of("cx.warranty.contractEndDate:1"),
        "cx.warranty.contractEndDate:1",
    ),
    "Liability": (
        ("eq",),
        False,
        _one_of("cx.grossNegligence:1", "cx.slightNegligence:1"),
        "cx.grossNegligence:1 or cx.slightNegligence:1",
    ),
    "JurisdictionLocation": (("eq",), False, _any_string, "a location"),
    "JurisdictionLocationReference": (
        ("eq",),
        False,
        _one_of("cx.location.dataConsumer:1", "cx.location.contractReference:1"),
        "cx.location.* values",
    ),
    "Precedence": (
        ("eq",),
        False,
        _one_of("cx.precedence.contractReference:1", "cx.precedence.rcAgreement:1"),
        "cx.precedence.* values",
    ),
    "DataUsageEndDurationDays": (("eq",), False, _POSITIVE.match, "a positive number of days"),
    "DataUsageEndDate": (("eq",), False, _DATETIME.match, "an xsd:dateTime with time zone"),
    "DataUsageEndDefinition": (
        ("eq",),
        False,
        _one_of("cx.dataUsageEnd.unlimited:1"),
        "cx.dataUsageEnd.unlimited:1",
    ),
    "DataProvisioningEndDurationDays": (
        ("eq",),
        False,
        _POSITIVE.match,
        "a positive number of days",
    ),
    "DataProvisioningEndDate": (("eq",), False, _DATETIME.match, "an xsd:dateTime with time zone"),
}

ACCESS_PERMISSION = {
    "FrameworkAgreement",
    "Membership",
    "BusinessPartnerNumber",
    "BusinessPartnerGroup",
}
USAGE_PERMISSION = {
    "FrameworkAgreement",
    "Membership",
    "UsagePurpose",
    "ContractReference",
    "AffiliatesRegion",
    "AffiliatesBpnl",
    "DataFrequency",
    "VersionChanges",
    "ContractTermination",
    "ConfidentialInformationMeasures",
    "ConfidentialInformationSharing",
    "ExclusiveUsage",
    "Warranty",
    "WarrantyDurationMonths",
    "WarrantyDefinition",
    "Liability",
    "JurisdictionLocation",
    "JurisdictionLocationReference",
    "Precedence",
    "DataUsageEndDurationDays",
    "DataUsageEndDate",
    "DataUsageEndDefinition",
}
PROHIBITION = {"AffiliatesRegion", "AffiliatesBpnl", "UsageRestriction"}
OBLIGATION = {"DataProvisioningEndDurationDays", "DataProvisioningEndDate"}
EXCLUSIVE = (
    ("DataUsageEndDurationDays", "DataUsageEndDate", "DataUsageEndDefinition"),
    ("WarrantyDurationMonths", "WarrantyDefinition"),
    ("DataProvisioningEndDurationDays", "DataProvisioningEndDate"),
)
REQUIRED_IN_USAGE = ("FrameworkAgreement", "UsagePurpose")


def operand_name(iri: str) -> str:
    """``https://w3id.org/catenax/2025/9/policy/Membership`` (or a bare name) -> ``Membership``."""
    for prefix in (CX, "https://w3id.org/catenax/policy/", "cx-policy:"):
        if iri.startswith(prefix):
            return iri[len(prefix) :]
    return iri if ":" not in iri and "/" not in iri else ""


def _check_constraints(rule: Rule, where: str, allowed: set[str], out: list[str]) -> list[str]:
    names: list[str] = []

    def walk(node: Constraint | LogicalConstraint) -> None:
        if isinstance(node, LogicalConstraint):
            if node.op != "and":
                out.append(
                    f"{where}: Catena-X allows only 'and' logical constraints, found '{node.op}'"
                )
            for m in node.members:
                walk(m)
            return
        name = operand_name(node.left)
        if name not in RULES:
            out.append(f"{where}: left operand {short(node.left)} is not a Catena-X 2025-9 operand")
            return
        names.append(name)
        if name not in allowed:
            out.append(f"{where}: {name} is not allowed here")
        operators, is_list, check, fmt = RULES[name]
        op = node.operator[len(ODRL) :] if node.operator.startswith(ODRL) else node.operator
        if op not in operators:
            out.append(f"{where}: {name} allows operator {' or '.join(operators)}, not {op}")
        values = [v for v, _ in node.right]
        if is_list and op in ("isAnyOf", "isAllOf", "isNoneOf") and not values:
            out.append(f"{where}: {name} needs a non-empty list")
        if not is_list and len(values) != 1:
            out.append(f"{where}: {name} takes one value, not a list")
        if is_list and len(set(map(str, values))) != len(values):
            out.append(f"{where}: {name} lists a value twice")
        for v in values:
            if not isinstance(v, str) or not check(v):
                out.append(f"{where}: {name} value {v!r} is not {fmt}")

    for c in rule.constraints:
        walk(c)
    return names


def validate(policy: Policy, kind: str) -> list[str]:
    """Every Catena-X 2025-9 violation of ``policy`` as an ``access`` or ``usage`` policy."""
    out: list[str] = []
    if kind == "access":
        if len(policy.permissions) != 1:
            out.append(
                f"an access policy has exactly one permission (found {len(policy.permissions)})"
            )
        if policy.prohibitions or policy.obligations:
            out.append("an access policy has no prohibitions or obligations")
        for rule in policy.permissions:
            where = f"permission {rule.uid or ''}".strip()
            if [a.iri for a in rule.actions] != [CX + "access"]:
                out.append(f"{where}: the action of an access policy is 'access'")
            if len(rule.constraints) > 1:
                out.append(f"{where}: wrap several constraints in one 'and'")
            _check_constraints(rule, where, ACCESS_PERMISSION, out)
        return out
    if len(policy.permissions) != 1:
        out.append(f"a usage policy has exactly one permission (found {len(policy.permissions)})")
    for group, allowed in (
        (policy.permissions, USAGE_PERMISSION),
        (policy.prohibitions, PROHIBITION),
        (policy.obligations, OBLIGATION),
    ):
        if len(group) > 1:
            out.append(f"a usage policy has at most one {group[0].kind}")
        for rule in group:
            where = f"{rule.kind} {rule.uid or ''}".strip()
            if [a.iri for a in rule.actions] != [ODRL + "use"]:
                out.append(f"{where}: the action of a usage policy is 'use'")
            if not rule.constraints:
                out.append(f"{where}: needs a constraint")
            if rule.kind == "obligation" and any(
                isinstance(c, LogicalConstraint) for c in rule.constraints
            ):
                out.append(f"{where}: an obligation takes one atomic constraint (no 'and')")
            if len(rule.constraints) > 1:
                out.append(f"{where}: wrap several constraints in one 'and'")
            names = _check_constraints(rule, where, allowed, out)
            if rule.kind == "permission":
                for required in REQUIRED_IN_USAGE:
                    if required not in names:
                        out.append(f"{where}: a usage policy needs a {required} constraint")
            for group_names in EXCLUSIVE:
                present = [n for n in group_names if n in names]
                if len(present) > 1:
                    out.append(f"{where}: {' and '.join(present)} exclude each other")
            for n in set(names):
                if names.count(n) > 1:
                    out.append(f"{where}: {n} appears more than once")
    return out
