"""PostgreSQL advisory locks over the taxonomy."""

from __future__ import annotations

from django.db import connection

# pg_advisory_xact_lock key for structural taxonomy changes (parent moves, merges, vocabulary imports):
# they run one at a time, so two concurrent changes cannot build a cycle each check alone would refuse.
TAXONOMY_LOCK_KEY = 7_310_001


def lock_taxonomy() -> None:
    """Take the taxonomy lock until the end of the current transaction (PostgreSQL; a no-op elsewhere)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [TAXONOMY_LOCK_KEY])
