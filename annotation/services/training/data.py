"""Training data: every approved tag under its canonical, active tag, and the fixed validation slice."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from annotation.models import (
    Product,
    ProductTag,
    Tag,
    TagAlias,
    TagSource,
)
from mlcore.data import group_key
from mlcore.types import ProductRecord, Taxonomy

# The validation slice: about this share of the approved products (whole title groups, chosen by a hash
# of the title, the same rule in every run; see validation_ids).
VALID_FRACTION = 0.15


class TrainingDataError(ValueError):
    """The approved tags cannot train a tagger (none at all, a single tag); the message says what to do."""


# --------------------------------------------------------------------------------------------------
# Training data: every approved tag (reviewed, imported, ...) under its canonical, active tag
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainingData:
    records: list  # list[mlcore.types.ProductRecord], tags are canonical tag names
    tag_ids: dict[str, int]  # canonical tag name -> Tag id (the label map stored with the version)
    valid_ids: list[str]
    fingerprint: str
    # Every active canonical tag with its parent and aliases: the tagger scores tags that no approved
    # product carries yet from their words (issue 19), and uses the hierarchy.
    taxonomy: Taxonomy | None = None


def training_taxonomy() -> Taxonomy:
    """The active canonical tags as mlcore sees them: names, parents (when active too) and aliases (the
    TagAlias rows and the names of tags merged into them)."""
    rows = list(
        Tag.objects.filter(merged_into__isnull=True, is_active=True).values_list("id", "name", "parent_id")
    )
    name_of = {tag_id: name for tag_id, name, _ in rows}
    parents = {name: name_of.get(parent_id) for _, name, parent_id in rows if parent_id in name_of}
    aliases: dict[str, list[str]] = {}
    for tag_id, alias in TagAlias.objects.filter(tag_id__in=name_of).values_list("tag_id", "name"):
        aliases.setdefault(name_of[tag_id], []).append(alias)
    for target, alias in Tag.objects.filter(merged_into_id__in=name_of).values_list("merged_into_id", "name"):
        if alias != name_of[target]:
            aliases.setdefault(name_of[target], []).append(alias)
    return Taxonomy(
        tags=tuple(name for _, name, _ in rows),
        parents=parents,
        aliases={tag: tuple(dict.fromkeys(names)) for tag, names in aliases.items()},
    )


def _training_data() -> TrainingData:
    tags = {
        tag_id: (name, merged_into, active)
        for tag_id, name, merged_into, active in Tag.objects.values_list(
            "id", "name", "merged_into_id", "is_active"
        )
    }

    def canonical(tag_id: int) -> int | None:
        seen = set()
        while tag_id in tags and tags[tag_id][1] is not None and tag_id not in seen:
            seen.add(tag_id)
            tag_id = tags[tag_id][1]
        return tag_id if tag_id in tags and tags[tag_id][2] else None

    product_tags: dict[int, set[int]] = {}
    # Tags the model approved itself are not trained on: a version would learn its own confident errors
    # back, and its held-out slice would grade it on its own answers. A person's review turns such a row
    # into a "review" row, which trains.
    rows = ProductTag.objects.exclude(source=TagSource.MODEL).values_list("product_id", "tag_id")
    for product_id, tag_id in rows.iterator(chunk_size=20_000):
        resolved = canonical(tag_id)
        if resolved is not None:
            product_tags.setdefault(product_id, set()).add(resolved)
    if not product_tags:
        raise TrainingDataError(
            "No approved tags to train on: review some products or import a catalog with tags first."
        )
    used = sorted({t for ts in product_tags.values() for t in ts})
    if len(used) < 2:
        raise TrainingDataError(
            f"All approved tags are the same tag ({tags[used[0]][0]!r}): a tagger needs at least two "
            "different tags to learn to tell them apart. Review more products first."
        )
    tag_ids = {tags[t][0]: t for t in used}
    name_of = {t: tags[t][0] for t in used}
    digest = hashlib.sha256()
    records = []
    fields = ("id", "title", "description", "brand", "category_path", "attributes", "lang", "content_hash")
    ids = sorted(product_tags)
    for start in range(0, len(ids), 20_000):
        chunk = ids[start : start + 20_000]
        for row in Product.objects.filter(id__in=chunk).order_by("id").values_list(*fields):
            pk, title, description, brand, category_path, attributes, lang, content_hash = row
            names = tuple(sorted(name_of[t] for t in product_tags[pk]))
            records.append(
                ProductRecord(
                    id=str(pk),
                    title=title,
                    description=description or "",
                    brand=brand or None,
                    category_path=tuple(category_path) if category_path else None,
                    attributes=attributes or None,
                    lang=lang or None,
                    tags=names,
                )
            )
            digest.update(f"{pk}\t{content_hash}\t{'|'.join(names)}\n".encode())
    if len(records) < 2:
        raise TrainingDataError(
            f"Only {len(records)} product has approved tags: a training needs products to learn from and "
            "products to validate on. Review more products first."
        )
    taxonomy = training_taxonomy()
    # The label map covers every tag the model may output: tags of the taxonomy without examples too.
    for tag_id, (name, merged_into, active) in tags.items():
        if merged_into is None and active:
            tag_ids.setdefault(name, tag_id)
    digest.update("\x1f".join(sorted(taxonomy.tags)).encode())
    return TrainingData(
        records=records,
        tag_ids=tag_ids,
        valid_ids=validation_ids(records),
        fingerprint=digest.hexdigest(),
        taxonomy=taxonomy,
    )


def validation_ids(records: Sequence) -> list[str]:
    """The held-out slice: products whose title group hashes into the first ``VALID_FRACTION`` of the
    hash space (mlcore's grouping: variants sharing a normalised title stay on one side).

    The rule is the same for every run, so a product held out once is held out in every later run: the
    active version never trained on the slice it is compared on, and the comparison is fair. A tiny
    data set still gets at least one product on each side.
    """

    def bucket(record) -> int:
        return int.from_bytes(hashlib.sha256(group_key(record).encode()).digest()[:8], "big") % 10_000

    buckets = [bucket(r) for r in records]
    cutoff = int(VALID_FRACTION * 10_000)
    valid = [r.id for r, b in zip(records, buckets) if b < cutoff]
    if not valid or len(valid) == len(records):
        # Too few groups for the fraction to land: hold out the lowest-hashing group (keep one to train).
        lowest = min(buckets)
        valid = [r.id for r, b in zip(records, buckets) if b == lowest]
        if len(valid) == len(records):
            raise TrainingDataError(
                "Every product with approved tags has the same title: a training needs products with "
                "different titles to learn from and to validate on."
            )
    return valid


def _valid_records(data: TrainingData) -> list:
    wanted = set(data.valid_ids)
    return [r for r in data.records if r.id in wanted]
