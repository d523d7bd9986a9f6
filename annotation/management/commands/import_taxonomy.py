from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.io.readers import FileFormatError
from annotation.services.taxonomy_import import import_taxonomy


class Command(BaseCommand):
    help = (
        "Load a tag vocabulary (name, parent, aliases) from CSV (header name,parent,aliases; aliases "
        "separated by '|') or JSONL. Parents may come after their children. Idempotent. A file with any "
        "problem writes nothing; each problem is reported with its line and field (exit status 1)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--max-errors-shown", type=int, default=50)

    def handle(self, *args, **options) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            result = import_taxonomy(path)
        except FileFormatError as exc:
            raise CommandError(f"{path}: {exc}. Nothing was imported.") from exc
        if result.errors:
            shown = options["max_errors_shown"]
            for error in result.errors[:shown]:
                self.stderr.write(f"{path}:{error}")
            if len(result.errors) > shown:
                self.stderr.write(f"... and {len(result.errors) - shown} more problems")
            raise CommandError(f"{len(result.errors)} problems in {path}; nothing was imported", returncode=1)
        self.stdout.write(
            f"{result.entries} tags read: {result.tags_created} created, {result.tags_updated} updated, "
            f"{result.tags_unchanged} unchanged; {result.aliases_created} aliases added"
            + (
                f"; {result.products_stamped} products' tag paths changed."
                if result.products_stamped
                else "."
            )
        )
