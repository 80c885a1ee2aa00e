"""The EDC-compatible management API (``/management/v3``, X-Api-Key, JSON-LD bodies)."""

from __future__ import annotations

from flask_smorest import Blueprint

from connectors.management import definitions, edrs, processes
from connectors.runtime import ConnectorRuntime


def blueprints(rt: ConnectorRuntime) -> list[Blueprint]:
    """Every management blueprint of the connector, for the MANAGEMENT surface."""
    return [definitions.blueprint(rt), processes.blueprint(rt), edrs.blueprint(rt)]
