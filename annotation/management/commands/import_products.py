from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.io.readers import FileFormatError
from annotation.services.imports import ImportStats, import_products
from annotation.services.suggestions import suggestions_refresh_request


class Command(BaseCommand):
    help = (
        "Import products from JSONL or CSV (upsert by id; re-importing the same file changes nothing). "
        "Tags in the file become approved tags with source 'import'. Rejected rows are reported with line, "
        "field and reason; good rows are imported regardless, and the exit status is 1 if any row was "
        "rejected. A file that is not JSONL/CSV is refused before anything is written."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", choices=["jsonl", "csv"], help="default: from extension and content")
        parser.add_argument(
            "--ignore-tags", action="store_true", help="load the products alone (untagged pool)"
        )
        parser.add_argument("--batch-size", type=int, default=None, help="rows per transaction")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument("--max-errors-shown", type=int, default=50)

    def handle(self, *args, **options) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if options["batch_size"] is not None and options["batch_size"] < 1:
            raise CommandError("--batch-size must be positive")
        bars: list[tqdm] = []  # made on the first progress report: a refused file shows no bar

        def progress(done: int, total: int, stats: ImportStats) -> None:
            if options["no_progress"]:
                return
            if not bars:
                bars.append(
                    tqdm(total=total, unit="B", unit_scale=True, desc="import", file=self.stderr._out)
                )
            bars[0].update(done - bars[0].n)
            bars[0].set_postfix(rows=stats.rows_ok, rejected=stats.rows_rejected, refresh=False)

        try:
            stats = import_products(
                path,
                file_format=options["format"],
                ignore_tags=options["ignore_tags"],
                batch_size=options["batch_size"],
                progress=progress,
            )
        except FileFormatError as exc:
            raise CommandError(f"{path}: {exc}. Nothing was imported.") from exc
        finally:
            for bar in bars:
                bar.close()
        self.stdout.write(
            f"{stats.rows_ok} rows imported ({stats.products_created} new, {stats.products_updated} updated, "
            f"{stats.products_unchanged} unchanged), {stats.tags_added} tags approved, "
            f"{stats.rows_rejected} rows rejected."
        )
        if stats.rows_duplicate:
            self.stderr.write(
                f"{stats.rows_duplicate} rows repeat an id of an earlier row (the later row is imported):"
            )
            for warning in stats.warnings[: options["max_errors_shown"]]:
                self.stderr.write(f"{path}:{warning}")
        if stats.products_created or stats.products_updated:
            # New or changed products get suggestions from the active version (or a cold-start order).
            suggestions_refresh_request()
        if stats.rows_rejected:
            shown = options["max_errors_shown"]
            for error in stats.errors[:shown]:
                self.stderr.write(f"{path}:{error}")
            if stats.rows_rejected > len(stats.errors[:shown]):
                self.stderr.write(
                    f"... {stats.rows_rejected} rows rejected in all; the first {len(stats.errors[:shown])} "
                    "problems are shown above"
                )
            raise CommandError(
                f"{stats.rows_rejected} rows rejected (the other rows were imported)", returncode=1
            )
