"""One folding rule on every entry point: "T-Shirt", "t shirt", a full-width spelling and an alias are one tag.

Each test goes through a real entry point — catalog import, taxonomy import, the review service, the
REST API, the taxonomy page — against the real PostgreSQL, and checks that no second tag appears.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from annotation.models import Product, ProductTag, Tag, TagAlias
from annotation.services.imports import import_products
from annotation.services.reviews import review_submit
from annotation.services.tags import tag_alias_add, tag_create, tag_merge
from annotation.services.taxonomy_import import import_taxonomy
from annotation.taxonomy.names import TagNameError, clean_tag_display_name, normalize_tag_name
from annotation.taxonomy.resolver import TagResolver

pytestmark = pytest.mark.django_db

SPELLINGS = ("T-Shirt", "t shirt", "T_SHIRT", "  t   shirt ", "Ｔ－ＳＨＩＲＴ", "t‐shirt", "T—Shirt")


def canonical_tags() -> list[str]:
    """The folding keys of the canonical tags (which spelling a new tag displays is the first one seen)."""
    return sorted(Tag.objects.filter(merged_into__isnull=True).values_list("normalized_name", flat=True))


def tags_of(external_id: str) -> set[str]:
    return set(
        ProductTag.objects.filter(product__external_id=external_id).values_list(
            "tag__normalized_name", flat=True
        )
    )


@pytest.fixture
def tee():
    tag = tag_create(name="T-Shirt")
    tag_alias_add(tag=tag, name="tee")
    return tag


def test_folding_rule():
    assert {normalize_tag_name(s) for s in SPELLINGS} == {"t shirt"}
    assert normalize_tag_name("Straße") == normalize_tag_name("STRASSE")  # case folding, not lower()
    assert normalize_tag_name("連衣裙") == "連衣裙" and normalize_tag_name("ｃａｆé") == "café"
    assert clean_tag_display_name("  Ｔ－Shirt  ") == "T-Shirt"  # display keeps case, folds width/space
    for bad in ("", "   ", "---", "a\x00b"):
        with pytest.raises(TagNameError):
            normalize_tag_name(bad)


def test_catalog_import_folds_spellings_and_aliases(tmp_path, tee):
    rows = [
        {"id": "a", "title": "A", "tags": ["T-Shirt"]},
        {"id": "b", "title": "B", "tags": ["t shirt", "TEE"]},
        {"id": "c", "title": "C", "tags": ["Ｔ－ＳＨＩＲＴ", "t_shirt", "Polo"]},
        {"id": "d", "title": "D", "tags": ["polo", "POLO "]},
    ]
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")
    stats = import_products(path)
    assert stats.rows_rejected == 0
    assert canonical_tags() == ["polo", "t shirt"]
    assert tags_of("a") == tags_of("b") == {"t shirt"}
    assert tags_of("c") == {"t shirt", "polo"} and tags_of("d") == {"polo"}


def test_catalog_import_creates_one_tag_for_new_spellings(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text(
        "id,title,tags\n1,One,Hoodie|hoodie\n2,Two,HOODIE| hoodie \n3,Three,Ｈｏｏｄｉｅ\n", encoding="utf-8"
    )
    import_products(path)
    assert Tag.objects.count() == 1 and Tag.objects.get().normalized_name == "hoodie"
    assert ProductTag.objects.count() == 3


def test_taxonomy_import_folds_onto_existing_tags_and_aliases(tmp_path, tee):
    path = tmp_path / "taxonomy.csv"
    path.write_text("name,parent,aliases\nt shirt,Tops,T-Shirts|tees\nTOPS,,\n", encoding="utf-8")
    result = import_taxonomy(path)
    assert not result.errors
    assert canonical_tags() == ["t shirt", "tops"]
    tee_now = Tag.objects.get(normalized_name="t shirt")
    assert tee_now.pk == tee.pk and tee_now.parent.normalized_name == "tops"
    assert set(TagAlias.objects.filter(tag=tee).values_list("normalized_name", flat=True)) == {
        "tee",
        "t shirts",
        "tees",
    }
    # An alias listed as a tag name of its own is refused, not turned into a second tag.
    clash = tmp_path / "clash.csv"
    clash.write_text("name,parent,aliases\nTee,,\n", encoding="utf-8")
    assert import_taxonomy(clash).errors
    assert Tag.objects.filter(normalized_name="tee").count() == 0


def test_review_submit_resolves_every_spelling_to_one_tag(admin_user, tee):
    product = Product.objects.create(external_id="p1", title="A shirt")
    review_submit(
        product=product, user=admin_user, tags=["t shirt", "TEE", "Ｔ－ＳＨＩＲＴ", "Linen", "linen"]
    )
    assert canonical_tags() == ["linen", "t shirt"]
    assert tags_of("p1") == {"t shirt", "linen"}


def test_api_create_refuses_a_second_spelling(admin_api, tee):
    for spelling in ("t shirt", "T_SHIRT", "Ｔ－ＳＨＩＲＴ", "Tee"):
        response = admin_api.post("/api/v1/tags/", {"name": spelling}, format="json")
        assert response.status_code == 409, (spelling, response.content)
        assert response.json()["fields"]
    created = admin_api.post("/api/v1/tags/", {"name": "  Polo  Shirt "}, format="json")
    assert created.status_code == 201 and created.json()["name"] == "Polo Shirt"
    assert admin_api.post("/api/v1/tags/", {"name": "polo-shirt"}, format="json").status_code == 409
    assert canonical_tags() == ["polo shirt", "t shirt"]


def test_taxonomy_page_create_refuses_a_second_spelling(client, admin_user, tee):
    client.force_login(admin_user)
    for spelling in ("t shirt", "TEE"):
        assert client.post(reverse("taxonomy-create"), {"name": spelling}).status_code == 400
    assert canonical_tags() == ["t shirt"]


def test_merged_name_resolves_to_the_target_everywhere(tmp_path, admin_user, tee):
    tshirt = tag_create(name="Tshirt")  # folds differently ("tshirt"): a real duplicate, merged away
    tag_merge(source=tshirt, target=tee)
    path = tmp_path / "catalog.jsonl"
    path.write_text(json.dumps({"id": "m", "title": "M", "tags": ["TSHIRT"]}) + "\n", encoding="utf-8")
    import_products(path)
    assert tags_of("m") == {"t shirt"}
    product = Product.objects.create(external_id="r", title="R")
    review_submit(product=product, user=admin_user, tags=["tshirt"])
    assert tags_of("r") == {"t shirt"}
    assert canonical_tags() == ["t shirt"]


def test_resolver_accepts_any_iterable(tee):
    resolver = TagResolver()
    names = (name for name in ["tee", "Hoodie", "hoodie"])  # a generator is read once
    found, unknown = resolver.resolve(names, create=True)
    assert unknown == []
    assert found["tee"] == tee.pk and found["Hoodie"] == found["hoodie"]
    assert canonical_tags() == ["hoodie", "t shirt"]
    found, unknown = TagResolver().resolve(iter(["T_SHIRT", "cardigan"]), create=False)
    assert found == {"T_SHIRT": tee.pk} and unknown == ["cardigan"]


def test_resolver_never_creates_a_tag_over_an_alias_added_since_it_loaded(tee):
    resolver = TagResolver()  # loaded before the alias exists
    tag_alias_add(tag=tee, name="Tee Shirt")
    found, _ = resolver.resolve(["tee-shirt"], create=True)
    assert found == {"tee-shirt": tee.pk}
    assert canonical_tags() == ["t shirt"]
