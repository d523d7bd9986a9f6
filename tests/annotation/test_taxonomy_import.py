"""import_taxonomy: hierarchy (parents after children), aliases, idempotency, all-or-nothing errors by line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation.io.readers import FileFormatError
from annotation.models import Product, ProductTag, Tag, TagAlias, TagSource
from annotation.services.taxonomy_import import import_taxonomy
from annotation.taxonomy.resolver import TagResolver
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.django_db

DEMO_TAXONOMY = REPO_ROOT / "annotation" / "fixtures" / "demo_taxonomy.csv"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def parent_of(name: str) -> str | None:
    tag = Tag.objects.select_related("parent").get(normalized_name=name)
    return tag.parent.name if tag.parent else None


def test_csv_with_parents_after_children_and_aliases(tmp_path):
    path = write(
        tmp_path / "tags.csv",
        "name,parent,aliases\n"
        "T-Shirts,Topwear,tee|tees| t_shirts \n"  # "t_shirts" folds onto the tag itself: not an alias
        "Topwear,Apparel,\n"
        "Apparel,,clothing\n"
        "品类:连衣裙,Apparel,连衣裙\n",
    )
    result = import_taxonomy(path)
    assert result.errors == []
    assert (result.tags_created, result.tags_updated, result.aliases_created) == (4, 0, 4)
    assert (
        parent_of("t shirts") == "Topwear"
        and parent_of("topwear") == "Apparel"
        and parent_of("apparel") is None
    )
    assert parent_of("品类:连衣裙") == "Apparel"
    assert Tag.objects.get(normalized_name="t shirts").name == "T-Shirts"
    assert set(TagAlias.objects.values_list("normalized_name", flat=True)) == {
        "tee",
        "tees",
        "clothing",
        "连衣裙",
    }
    resolver = TagResolver()
    assert (
        resolver.lookup("TEE")
        == resolver.lookup("t_shirts")
        == Tag.objects.get(normalized_name="t shirts").pk
    )


def test_jsonl_vocabulary(tmp_path):
    lines = [
        {"name": "Shoes", "parent": "Footwear", "aliases": ["sneakers"], "description": "All shoes"},
        {"name": "Footwear", "parent": None},
        {"name": "Boots", "parent": "footwear", "aliases": "wellies|gumboots"},
    ]
    path = write(tmp_path / "tags.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    result = import_taxonomy(path)
    assert (result.errors, result.tags_created, result.aliases_created) == ([], 3, 3)
    assert parent_of("boots") == "Footwear"
    assert Tag.objects.get(normalized_name="shoes").description == "All shoes"


def test_demo_taxonomy_loads_and_loading_it_again_changes_nothing():
    first = import_taxonomy(DEMO_TAXONOMY)
    assert first.errors == [] and first.tags_created == first.entries > 100
    before = list(Tag.objects.values_list("id", "name", "parent_id", "updated_at").order_by("id"))
    aliases_before = list(TagAlias.objects.values_list("id", "normalized_name", "tag_id").order_by("id"))
    again = import_taxonomy(DEMO_TAXONOMY)
    assert (again.tags_created, again.tags_updated, again.aliases_created) == (0, 0, 0)
    assert again.tags_unchanged == first.entries
    assert list(Tag.objects.values_list("id", "name", "parent_id", "updated_at").order_by("id")) == before
    assert (
        list(TagAlias.objects.values_list("id", "normalized_name", "tag_id").order_by("id")) == aliases_before
    )


def test_existing_tags_are_updated_in_place_and_their_products_stamped(tmp_path):
    red = Tag.objects.create(name="red", normalized_name="red")
    product = Product.objects.create(external_id="p", title="Red shirt")
    ProductTag.objects.create(product=product, tag=red, source=TagSource.IMPORT)
    result = import_taxonomy(write(tmp_path / "tags.csv", "name,parent\nRed,Colour\nColour,\n"))
    assert (result.tags_created, result.tags_updated, result.products_stamped) == (1, 1, 1)
    red.refresh_from_db()
    assert (red.name, red.parent.name) == ("Red", "Colour")  # same tag, new display name and parent
    assert Product.objects.get(pk=product.pk).tags_updated_at is not None


def test_parent_may_be_an_existing_tag_or_alias(tmp_path):
    apparel = Tag.objects.create(name="Apparel", normalized_name="apparel")
    TagAlias.objects.create(tag=apparel, name="Clothing", normalized_name="clothing")
    result = import_taxonomy(write(tmp_path / "tags.csv", "name,parent\nJackets,Clothing\nShirts,apparel\n"))
    assert result.errors == []
    assert parent_of("jackets") == parent_of("shirts") == "Apparel"


def errors(result) -> list[tuple[int, str]]:
    return [(error.line, error.field) for error in result.errors]


def test_problems_are_reported_by_line_and_nothing_is_written(tmp_path):
    Tag.objects.create(name="Existing", normalized_name="existing")
    TagAlias.objects.create(
        tag=Tag.objects.create(name="Other", normalized_name="other"), name="x", normalized_name="taken"
    )
    path = write(
        tmp_path / "tags.csv",
        "name,parent,aliases\n"
        "Good,,\n"  # 2: fine on its own
        ",Good,\n"  # 3: no name
        "Orphan,Nowhere,\n"  # 4: unknown parent
        "good,,\n"  # 5: repeats line 2 (folds to the same key)
        "Loop A,Loop B,\n"  # 6: cycle
        "Loop B,Loop A,\n"  # 7: cycle
        "Self,self,\n"  # 8: own parent
        "Aliased,,existing\n"  # 9: alias is a tag name
        "Bell\x07,,\n"  # 10: control character
        "taken,,\n"  # 11: name is an existing alias
        "Twice,,dup\n"  # 12
        "Again,,dup\n"  # 13: alias used twice
        "too,many,columns,here\n",  # 14
    )
    result = import_taxonomy(path)
    assert errors(result) == [
        (3, "name"),
        (4, "parent"),
        (5, "name"),
        (6, "parent"),
        (7, "parent"),
        (8, "parent"),
        (9, "aliases"),
        (10, "name"),
        (11, "name"),
        (13, "aliases"),
        (14, "(row)"),
    ]
    reasons = {error.line: error.reason for error in result.errors}
    assert reasons[3] == "is required"
    assert "neither a tag in this file nor an existing tag" in reasons[4]
    assert "repeats the tag of line 2" in reasons[5]
    assert "cycle" in reasons[6]
    assert reasons[8] == "a tag cannot be its own parent"
    assert "already an alias of tag 'Other'" in reasons[11]
    assert "also an alias on line 12" in reasons[13]
    assert set(Tag.objects.values_list("normalized_name", flat=True)) == {"existing", "other"}


def test_a_cycle_through_existing_tags_is_refused(tmp_path):
    parent = Tag.objects.create(name="A", normalized_name="a")
    Tag.objects.create(name="B", normalized_name="b", parent=parent)
    result = import_taxonomy(write(tmp_path / "tags.csv", "name,parent\nA,B\n"))
    assert errors(result) == [(2, "parent")]
    assert Tag.objects.get(normalized_name="a").parent is None


def test_files_that_are_not_vocabularies_are_refused(tmp_path):
    with pytest.raises(FileFormatError, match="lacks the column name"):
        import_taxonomy(write(tmp_path / "tags.csv", "tag,parent\nRed,\n"))
    binary = tmp_path / "tags.jsonl"
    binary.write_bytes(b"\x00\x01\x02" * 50)
    with pytest.raises(FileFormatError, match="binary"):
        import_taxonomy(binary)
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_bytes(b'{"name": "ok"}\n{"name": 5}\n{"name": "caf\xe9"}\nnot json\n')
    assert errors(import_taxonomy(bad_jsonl)) == [(2, "name"), (3, "(line)"), (4, "(line)")]
    assert not Tag.objects.exists()


def test_command_reports_and_exits_non_zero_on_problems(tmp_path):
    out = io.StringIO()
    call_command("import_taxonomy", str(DEMO_TAXONOMY), stdout=out)
    assert "created" in out.getvalue()
    err = io.StringIO()
    bad = write(tmp_path / "tags.csv", "name,parent\nOrphan,Nowhere\n")
    with pytest.raises(CommandError, match="1 problems") as caught:
        call_command("import_taxonomy", str(bad), stdout=io.StringIO(), stderr=err)
    assert caught.value.returncode == 1
    assert (
        f"{bad}:line 2: parent: 'Nowhere' is neither a tag in this file nor an existing tag" in err.getvalue()
    )
    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("import_taxonomy", str(write(tmp_path / "x.csv", "")), stdout=io.StringIO())
