"""Shared CLI behaviour: known failures become one clear line and a non-zero exit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from sqlalchemy.exc import SQLAlchemyError

from connectors.identity.errors import DidError, IdentityError
from node.config import ConfigError
from node.home import HomeError
from node.keystore import KeyStoreError

F = TypeVar("F", bound=Callable[..., Any])
KNOWN_ERRORS = (ConfigError, KeyStoreError, IdentityError, HomeError, DidError)

home_option = click.option(
    "--home", required=True, envvar="AUTOSPACE_HOME",
    type=click.Path(file_okay=False, path_type=Path),
    help="Home directory (env AUTOSPACE_HOME).",
)


def one_line_errors(func: F) -> F:
    """Turn operator-facing errors into ``click.ClickException`` (exit status 1)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KNOWN_ERRORS as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise click.ClickException(f"database: {first}") from None

    return cast(F, wrapper)
