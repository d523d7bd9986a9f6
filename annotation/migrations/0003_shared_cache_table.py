"""The database cache table (settings.CACHE_TABLE): rate-limit counters shared by every web process
whenever CACHE_URL is unset, embedded mode included. Created by `migrate` so no deployment step can
forget it; `createcachetable` skips it once it exists."""

from django.core.management import call_command
from django.db import migrations

CACHE_TABLE = "tagstudio_cache"  # frozen here: settings.CACHE_TABLE may change, this migration may not


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", CACHE_TABLE, database=schema_editor.connection.alias, verbosity=0)


def drop_cache_table(apps, schema_editor):
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(CACHE_TABLE)}")


class Migration(migrations.Migration):

    dependencies = [
        ("annotation", "0002_lean_import_indexes"),
    ]

    operations = [
        migrations.RunPython(create_cache_table, drop_cache_table),
    ]
