"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from node.db import all_metadata, make_engine, migrate
from tests.support.databases import fresh_database_url

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """URL of an empty, isolated database on the backend under test."""
    with fresh_database_url(tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """Engine on an empty database whose tables are created from every package's metadata."""
    eng = make_engine(db_url)
    for md in all_metadata():
        md.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def migrated_engine(db_url: str) -> Iterator[Engine]:
    """Engine on a database brought up to date by the Alembic migrations (all heads)."""
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (specs and conformance suites); tests needing it skip when absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present beside the repository")
    return SHARED
