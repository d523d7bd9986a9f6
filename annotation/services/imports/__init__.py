"""Catalog import: parse a file (``parse``), write it with PostgreSQL COPY (``pg_writer``) or Django's bulk
operations (``orm_writer``); the use-cases (``run``) are re-exported here, so callers import them from
``annotation.services.imports``."""

from annotation.services.imports.orm_writer import write_products_generic, write_tags_generic
from annotation.services.imports.parse import (
    PARALLEL_MIN_BYTES,
    PARALLEL_QUEUE_BATCHES,
    ParsedBatch,
    encode_copy_line,
    parse_batches,
    parse_batches_in_subprocess,
)
from annotation.services.imports.pg_writer import _WrittenIds, write_batch_postgres
from annotation.services.imports.retention import import_files_remove_expired
from annotation.services.imports.run import (
    ImportProgress,
    ImportStats,
    import_job_create,
    import_job_run,
    import_products,
)

__all__ = [
    "PARALLEL_MIN_BYTES",
    "PARALLEL_QUEUE_BATCHES",
    "ImportProgress",
    "ImportStats",
    "ParsedBatch",
    "_WrittenIds",
    "encode_copy_line",
    "import_files_remove_expired",
    "import_job_create",
    "import_job_run",
    "import_products",
    "parse_batches",
    "parse_batches_in_subprocess",
    "write_batch_postgres",
    "write_products_generic",
    "write_tags_generic",
]
