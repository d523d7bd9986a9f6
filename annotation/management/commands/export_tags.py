import datetime as dt
import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from annotation.io.writers import EXPORT_FORMATS, format_timestamp
from annotation.selectors.exports import ENGINES, ExportError, approved_tags_export, export_count
from annotation.services.exports import export_write


def _parse_since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"--updated-since must be an ISO-8601 date-time, got {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class Command(BaseCommand):
    help = (
        "Export approved tags to PATH ('-' for stdout) as JSONL, CSV or JSON; --updated-since for an incremental "
        "export. Prints the high-water mark to pass as --updated-since next time."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path")
        parser.add_argument("--format", dest="file_format", choices=EXPORT_FORMATS, default="jsonl")
        parser.add_argument("--updated-since", help="ISO-8601; only products whose tags changed since then")
        parser.add_argument("--engine", choices=ENGINES, help="default: copy on PostgreSQL, python elsewhere")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options) -> None:
        since = _parse_since(options["updated_since"])
        file_format, engine = options["file_format"], options["engine"]
        try:
            if options["path"] == "-":
                export = approved_tags_export(file_format=file_format, updated_since=since, engine=engine)
                for chunk in export.chunks():
                    sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                rows, mark, where = export.rows, export.high_water_mark, "stdout"
            else:
                bar = None
                if not options["no_progress"]:
                    total = export_count(updated_since=since)
                    bar = tqdm(total=total, unit="product", unit_scale=True, desc="export", file=sys.stderr)

                def progress(done: int) -> None:
                    bar.update(done - bar.n)  # the total is an estimate: the bar may end a little short of it

                result = export_write(
                    path=options["path"],
                    file_format=file_format,
                    updated_since=since,
                    engine=engine,
                    progress=progress if bar is not None else None,
                )
                if bar is not None:
                    bar.close()
                rows, mark, where = result.rows, result.high_water_mark, str(result.path)
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"Exported {rows} products to {where}.")
        self.stderr.write(f"High-water mark: {format_timestamp(mark)}")
