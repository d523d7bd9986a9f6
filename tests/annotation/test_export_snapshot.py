"""An export is one consistent snapshot, also while imports and reviews commit under it (issue 14, point 1).

Real PostgreSQL, committed data, writer threads going through the real services:
- an importer re-imports one set of products again and again, each generation adding a new tag
  (``gen-<n>``) to every one of them in one transaction (one import batch);
- a reviewer submits other products again and again with changing tag sets.
Each writer records, right after each of its commits, the state it left each product in (it is the only
writer of those products, so that read is exactly the committed state), keyed by ``tags_updated_at``.

Every exported record must then be a state its product really had (its tags are the ones the database
held for that ``tags_updated_at``), and the importer's products must all show the same generation (one
transaction is all or nothing in a snapshot), no earlier than the last one committed before the export
began. A test hook widens the window that broke it before: right after the export has read its tag
lookups, it waits for the importer to commit one more generation (new tags on every product).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from django.db import connection

from annotation.io.writers import format_timestamp
from annotation.models import Product, ProductTag
from annotation.roles import OPERATOR
from annotation.selectors import exports as export_selectors
from annotation.services import exports
from annotation.services.imports import import_products
from annotation.services.reviews import review_claim, review_submit
from annotation.services.users import user_create

pytestmark = pytest.mark.django_db(transaction=True)

IMPORTED = 120  # re-imported every generation (one batch: one transaction)
REVIEWED = 20  # submitted again and again by the reviewer
BASE_TAGS = ["snap-base", "snap-other"]
WAIT_S = 30


def _state(external_ids: list[str]) -> dict[str, tuple[str, frozenset[str]]]:
    """Each product's (tags_updated_at as exported, names of its active tags)."""
    stamps = dict(
        Product.objects.filter(external_id__in=external_ids).values_list("external_id", "tags_updated_at")
    )
    names: dict[str, set[str]] = {external_id: set() for external_id in external_ids}
    for external_id, name in ProductTag.objects.filter(
        product__external_id__in=external_ids, tag__is_active=True
    ).values_list("product__external_id", "tag__name"):
        names[external_id].add(name)
    return {key: (format_timestamp(stamps[key]), frozenset(names[key])) for key in external_ids}


class Writers:
    """The importer and reviewer threads, and what they committed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.imported = [f"snap-imp-{i:04d}" for i in range(IMPORTED)]
        self.reviewed = [f"snap-rev-{i:04d}" for i in range(REVIEWED)]
        self.history: dict[str, dict[str, frozenset[str]]] = {}
        self.generation = 0  # the last import generation committed
        self.reviews = 0
        self.changed = threading.Condition()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def record(self, external_ids: list[str]) -> None:
        for external_id, (stamp, names) in _state(external_ids).items():
            self.history.setdefault(external_id, {})[stamp] = names

    def import_generation(self, generation: int, ids: list[str]) -> None:
        path = self.directory / f"gen-{generation}.jsonl"
        tags = BASE_TAGS + ([f"gen-{generation}"] if generation else [])
        with path.open("w", encoding="utf-8") as out:
            for external_id in ids:
                row = {"id": external_id, "title": f"{external_id} generation {generation}", "tags": tags}
                out.write(json.dumps(row) + "\n")
        stats = import_products(path, parallel=False)
        assert stats.rows_rejected == 0, stats.errors

    def start(self) -> None:
        self.import_generation(0, self.imported + self.reviewed)
        self.record(self.imported + self.reviewed)
        self.threads = [
            threading.Thread(target=self._guard(self._importer), name="importer"),
            threading.Thread(target=self._guard(self._reviewer), name="reviewer"),
        ]
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        if self.errors:
            raise self.errors[0]

    def _guard(self, target):
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # reported by join()
                self.errors.append(exc)
                with self.changed:
                    self.changed.notify_all()
            finally:
                connection.close()

        return run

    def _importer(self) -> None:
        generation = 0
        while not self.stop.is_set():
            generation += 1
            self.import_generation(generation, self.imported)
            self.record(self.imported)
            with self.changed:
                self.generation = generation
                self.changed.notify_all()
            self.stop.wait(0.05)

    def _reviewer(self) -> None:
        user, _ = user_create(
            username="snap-reviewer", password="snap-pass-123", role=OPERATOR, validate=False
        )
        choices = [BASE_TAGS, BASE_TAGS[:1], BASE_TAGS[1:]]
        turn = 0
        while not self.stop.is_set():
            external_id = self.reviewed[turn % REVIEWED]
            product = Product.objects.get(external_id=external_id)
            review_claim(product=product, user=user)
            review_submit(product=product, user=user, tags=choices[turn % len(choices)])
            self.record([external_id])
            turn += 1
            with self.changed:
                self.reviews = turn
                self.changed.notify_all()
            self.stop.wait(0.02)

    def wait_for_generation(self, above: int) -> None:
        self._wait_for(lambda: self.generation > above, f"the importer did not commit generation {above + 1}")

    def wait_for_reviews(self, above: int) -> None:
        self._wait_for(lambda: self.reviews > above, f"the reviewer did not submit review {above + 1}")

    def _wait_for(self, done, failure: str) -> None:
        with self.changed:
            ok = self.changed.wait_for(lambda: done() or self.errors, timeout=WAIT_S)
        assert ok and not self.errors, failure


@pytest.fixture
def writers(tmp_path, monkeypatch) -> Writers:
    writers = Writers(tmp_path)
    read_lookups = export_selectors._lookups

    def lookups_then_wait():
        # The test hook: the export has read its tag lookups; let the importer commit new tags on every
        # product before the export reads them.
        lookups = read_lookups()
        writers.wait_for_generation(writers.generation)
        return lookups

    monkeypatch.setattr(export_selectors, "_lookups", lookups_then_wait)
    writers.start()
    try:
        yield writers
    finally:
        writers.join()


def _check_snapshot(writers: Writers, records: list[dict], generation_before: int) -> None:
    by_id = {record["external_id"]: record for record in records if record.get("type") == "product"}
    assert set(writers.imported) | set(writers.reviewed) <= set(by_id)
    for external_id in writers.imported + writers.reviewed:
        record = by_id[external_id]
        names = frozenset(tag["name"] for tag in record["tags"])
        states = writers.history[external_id]
        assert record["tags_updated_at"] in states, f"{external_id}: a tags_updated_at it never had"
        assert names == states[record["tags_updated_at"]], (
            f"{external_id}: exported {sorted(names)}, the database held "
            f"{sorted(states[record['tags_updated_at']])} at {record['tags_updated_at']}"
        )
    generations = {
        max(int(tag["name"][4:]) for tag in by_id[external_id]["tags"] if tag["name"].startswith("gen-"))
        for external_id in writers.imported
    }
    assert len(generations) == 1, f"one import transaction seen in part: generations {sorted(generations)}"
    assert generations.pop() >= generation_before


@pytest.mark.parametrize("engine", ["copy", "python"])
def test_exports_under_concurrent_imports_and_reviews_are_snapshots(writers, engine, tmp_path):
    # Both writers are running before the first export: on a busy machine the reviewer's first submit can
    # come after a fast export loop has ended, and the exports must be taken while reviews are written.
    writers.wait_for_generation(0)
    writers.wait_for_reviews(0)
    reviews_before = writers.reviews
    for attempt in range(3):
        before = writers.generation
        export = exports.approved_tags_export(file_format="jsonl", engine=engine)
        data = b"".join(export.chunks())
        _check_snapshot(writers, [json.loads(line) for line in data.decode().splitlines()], before)
        # The background job and the command write through export_write: the same snapshot rule.
        before = writers.generation
        result = exports.export_write(path=tmp_path / f"{engine}-{attempt}.jsonl", engine=engine)
        lines = result.path.read_text(encoding="utf-8").splitlines()
        _check_snapshot(writers, [json.loads(line) for line in lines], before)
    writers.wait_for_reviews(reviews_before)  # the reviewer kept submitting through the exports
