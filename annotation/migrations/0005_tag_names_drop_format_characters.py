"""Clean tag and alias names stored before names.py dropped invisible format characters (Unicode Cf).

Each tag or alias whose name holds a Cf character (zero-width space, BOM, soft hyphen, RTL mark, ...)
gets the name and folding key the current rule gives it. Duplicates are not merged: when the cleaned key
is already held by another tag or alias (or the name is nothing but such characters), the row is left as
it is and logged, for an admin to merge or rename. Products carrying a renamed tag are stamped, so the
next incremental export carries the clean name.
"""

from __future__ import annotations

import logging
import unicodedata

from django.db import migrations
from django.utils import timezone

from annotation.taxonomy.names import TagNameError, clean_tag_display_name, normalize_tag_name

logger = logging.getLogger("annotation.migrations")


def _has_format_characters(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cf" for ch in text)


def _clean(name: str) -> tuple[str, str] | None:
    try:
        return clean_tag_display_name(name), normalize_tag_name(name)
    except TagNameError:
        return None


def clean_stored_names(apps, schema_editor) -> None:
    Tag = apps.get_model("annotation", "Tag")
    TagAlias = apps.get_model("annotation", "TagAlias")
    ProductTag = apps.get_model("annotation", "ProductTag")
    Product = apps.get_model("annotation", "Product")
    now = timezone.now()

    def key_taken(key: str, *, tag_pk: int | None = None, alias_pk: int | None = None) -> bool:
        return (
            Tag.objects.filter(normalized_name=key).exclude(pk=tag_pk).exists()
            or TagAlias.objects.filter(normalized_name=key).exclude(pk=alias_pk).exists()
        )

    renamed_tags: list[int] = []
    for model, kind in ((Tag, "tag"), (TagAlias, "alias")):
        # In id order: of two rows that clean to the same name, the older one takes it.
        rows = [
            (pk, name, key)
            for pk, name, key in model.objects.order_by("pk")
            .values_list("pk", "name", "normalized_name")
            .iterator()
            if _has_format_characters(name) or _has_format_characters(key)
        ]
        for pk, name, key in rows:
            cleaned = _clean(name)
            if cleaned is None:
                logger.warning(
                    "%s %s %r: nothing left once format characters are dropped; left as is", kind, pk, name
                )
                continue
            display, new_key = cleaned
            if (display, new_key) == (name, key):
                continue
            owner = {"tag_pk": pk} if kind == "tag" else {"alias_pk": pk}
            if new_key != key and key_taken(new_key, **owner):
                logger.warning(
                    "%s %s %r: its cleaned name %r is already taken by another tag or alias; left as is "
                    "(merge or rename it)",
                    kind,
                    pk,
                    name,
                    display,
                )
                continue
            changes = {"name": display, "normalized_name": new_key}
            if kind == "tag":
                changes["updated_at"] = now
                renamed_tags.append(pk)
            model.objects.filter(pk=pk).update(**changes)
    if renamed_tags:
        carriers = ProductTag.objects.filter(tag_id__in=renamed_tags).values("product_id")
        Product.objects.filter(id__in=carriers).update(tags_updated_at=now)


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0004_review_claim_token"),
    ]

    operations = [
        migrations.RunPython(clean_stored_names, migrations.RunPython.noop, elidable=True),
    ]
