"""Indexes of the catalog search (issue 16, point 4; annotation.selectors.search).

- ``product_category_idx``: the first three levels of ``category_path`` as text (``->> 0``, ``->> 1``,
  ``->> 2`` on PostgreSQL, ``json_extract`` on SQLite), so a category prefix is an equality on the index's
  leading columns.
- ``product_text_trgm_idx`` (PostgreSQL only): one multi-column GIN trigram index over title, brand and
  external id, so the list's text filter (Django's ``icontains``: ``UPPER(col::text) LIKE UPPER('%text%')``,
  hence the ``upper(...)`` expressions, on each column, OR-ed) is three bitmap scans of one index instead of
  a scan of the catalog, and its count stays fast. ``pg_trgm`` ships with PostgreSQL and is
  a trusted extension (PostgreSQL 13+): the database owner may create it. SQLite (embedded mode) keeps
  scanning: its catalogs are small.

The suggestion index the suggested-tag filter and the score order read, (tag, model_version, score,
product), is migration 0007_bulk_candidates's ``suggestion_tag_score_idx``; it is not created twice here.
"""

import django.db.models.fields.json
from django.db import migrations, models

TRGM_INDEX = "product_text_trgm_idx"


def trigram_index_create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {TRGM_INDEX} ON annotation_product "
        "USING gin (upper(title::text) gin_trgm_ops, upper(brand::text) gin_trgm_ops, "
        "upper(external_id::text) gin_trgm_ops)"
    )


def trigram_index_drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {TRGM_INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0005_tag_names_drop_format_characters"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="product",
            index=models.Index(
                django.db.models.fields.json.KeyTextTransform("0", "category_path"),
                django.db.models.fields.json.KeyTextTransform("1", "category_path"),
                django.db.models.fields.json.KeyTextTransform("2", "category_path"),
                name="product_category_idx",
            ),
        ),
        migrations.RunPython(trigram_index_create, trigram_index_drop, elidable=False),
    ]
