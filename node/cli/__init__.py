"""The ``autospace`` command.

Sub-commands live in one module each and are imported only when used, so that
``autospace policy eval`` does not pay for loading web3 or numpy, and a broken
area cannot stop the others from working.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

# command name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "init": "node.cli.home:init_command",
    "serve": "node.cli.serve:serve_command",
    "worker": "node.cli.serve:worker_command",
    "status": "node.cli.status:status_command",
    "authority": "node.cli.authority:authority_group",
    "credential": "node.cli.credential:credential_group",
    "policy": "node.cli.policy:policy_group",
    "audit": "node.cli.audit:audit_group",
    "ledger": "node.cli.ledger:ledger_group",
    "dataspace": "node.cli.dataspace:dataspace_group",
    "fl": "node.cli.fl:fl_group",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def __init__(self, *args, lazy: dict[str, str], **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._available()))

    def _available(self) -> list[str]:
        names = []
        for name, target in self._lazy.items():
            module = target.split(":", 1)[0]
            if importlib.util.find_spec(module) is not None:
                names.append(name)
        return names

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":", 1)
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:
                    return None
                raise
            return getattr(module, attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="autospace")
def cli() -> None:
    """autospace: a connector node for the automotive trusted data space."""


def main() -> None:
    """Console entry point."""
    cli(prog_name="autospace")
