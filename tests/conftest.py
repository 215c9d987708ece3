"""Shared test fixtures."""

from tests.pg_fixtures import pg_url  # noqa: F401  (session fixture: a fresh PostgreSQL database)
