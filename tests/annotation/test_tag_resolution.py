"""One tag resolver, one rule set (annotation.taxonomy.resolver), checked through every entry point.

Rules: an alias resolves to its tag; a merged tag's name resolves to the tag it was merged into; a
deactivated tag resolves for reads (product lists, taxonomy pages, export's deleted list) but is not newly
applied (review refuses it unless the product carries it already, import skips it); an unknown name is
found nowhere, and only imports and admins' reviews create it.
"""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from annotation.io.readers import ProductRow
from annotation.models import Product, ProductTag, Tag, TagSource
from annotation.selectors.catalog import ProductListFilter, product_list, tag_lookup
from annotation.services import exports
from annotation.services.imports import import_products, write_products_generic, write_tags_generic
from annotation.services.reviews import UnknownTags, review_submit
from annotation.services.tags import tag_alias_add, tag_create, tag_deactivate, tag_merge
from annotation.services.taxonomy_import import import_taxonomy
from annotation.taxonomy.resolver import TagResolver, tag_resolve

pytestmark = pytest.mark.django_db


@pytest.fixture
def vocabulary():
    """Shirts (alias "Tee Shirt", with "Tshirt" merged into it) and Vintage (deactivated), each on a product."""
    shirts = tag_create(name="Shirts")
    tag_alias_add(tag=shirts, name="Tee Shirt")
    tshirt = tag_create(name="Tshirt")
    vintage = tag_create(name="Vintage")
    shirt_product = Product.objects.create(external_id="p-shirt", title="Oxford")
    vintage_product = Product.objects.create(external_id="p-vintage", title="Old coat")
    merged_product = Product.objects.create(external_id="p-merged", title="Tee")
    ProductTag.objects.create(product=shirt_product, tag=shirts, source=TagSource.REVIEW)
    ProductTag.objects.create(product=vintage_product, tag=vintage, source=TagSource.REVIEW)
    ProductTag.objects.create(product=merged_product, tag=tshirt, source=TagSource.REVIEW)
    tag_merge(source=tshirt, target=shirts)
    tag_deactivate(tag=vintage)
    return {"shirts": shirts, "tshirt": tshirt, "vintage": vintage}


def tags_of(external_id: str) -> set[str]:
    return set(
        ProductTag.objects.filter(product__external_id=external_id).values_list("tag__name", flat=True)
    )


# --- the resolver itself ------------------------------------------------------------------------------


@pytest.mark.parametrize("preload", [True, False])
def test_resolver_rules(vocabulary, preload):
    shirts, vintage = vocabulary["shirts"], vocabulary["vintage"]
    resolver = TagResolver(preload=preload)
    assert resolver.lookup("TEE-SHIRT") == shirts.pk  # alias
    assert resolver.lookup("tshirt") == shirts.pk  # merged name
    assert resolver.tag("vintage").is_active is False  # inactive: still resolves for reads
    assert resolver.lookup("nope") is None and resolver.lookup("---") is None
    applied = resolver.resolve_to_apply(["Tee Shirt", "TSHIRT", "Vintage", "nope", "---"], create=False)
    assert applied.tags == {"Tee Shirt": shirts.pk, "TSHIRT": shirts.pk}
    assert (applied.inactive, applied.unknown, applied.invalid) == (["Vintage"], ["nope"], ["---"])
    kept = resolver.resolve_to_apply(["Vintage"], create=False, keep={vintage.pk})
    assert kept.tags == {"Vintage": vintage.pk} and not kept.refused
    assert resolver.canonical([vocabulary["tshirt"].pk])[vocabulary["tshirt"].pk].id == shirts.pk


def test_import_resolves_without_a_query_per_name(vocabulary, django_assert_max_num_queries):
    resolver = TagResolver()  # preloaded
    with django_assert_max_num_queries(0):
        found, unknown = resolver.resolve(["tee shirt", "TSHIRT", "vintage"] * 1000, create=False)
    assert set(found.values()) == {vocabulary["shirts"].pk, vocabulary["vintage"].pk} and unknown == []


# --- review submit --------------------------------------------------------------------------------------


def test_review_submit_alias_and_merged_name_resolve_to_the_tag(vocabulary, operator):
    product = Product.objects.create(external_id="r1", title="R1")
    event = review_submit(product=product, user=operator, tags=["tee-shirt", "TSHIRT"])
    assert event.final_tags == ["Shirts"] and tags_of("r1") == {"Shirts"}


def test_review_submit_refuses_a_deactivated_tag_but_keeps_it_where_it_is(vocabulary, operator, admin_user):
    product = Product.objects.create(external_id="r2", title="R2")
    for user in (operator, admin_user):  # an admin does not create a second "Vintage" either
        with pytest.raises(UnknownTags, match="Deactivated tag: vintage"):
            review_submit(product=product, user=user, tags=["Shirts", "vintage"])
    assert tags_of("r2") == set() and Tag.objects.filter(normalized_name__startswith="vintage").count() == 1
    carrier = Product.objects.get(external_id="p-vintage")
    review_submit(product=carrier, user=operator, tags=["Vintage", "Shirts"])  # kept, not newly applied
    assert tags_of("p-vintage") == {"Vintage", "Shirts"}


def test_review_submit_unknown_names_only_admins_create(vocabulary, operator, admin_user):
    product = Product.objects.create(external_id="r3", title="R3")
    with pytest.raises(UnknownTags, match="Unknown tag"):
        review_submit(product=product, user=operator, tags=["Linen"])
    review_submit(product=product, user=admin_user, tags=["Linen"])
    assert tags_of("r3") == {"Linen"}


# --- the product list: HTML page and selector -------------------------------------------------------------


@pytest.fixture
def operator_client(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def listed_html(client: Client, tag: str) -> list[str]:
    html = client.get("/products/", {"status": "all", "tag": tag}).content.decode()
    return re.findall(r'href="/products/\d+/">([^<]+)</a>', html)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("tee shirt", {"p-shirt", "p-merged"}),  # alias
        ("TSHIRT", {"p-shirt", "p-merged"}),  # merged name
        ("vintage", {"p-vintage"}),  # deactivated: its products are still listed
    ],
)
def test_html_product_list_filter(vocabulary, operator_client, tag, expected):
    assert set(listed_html(operator_client, tag)) == expected
    page = product_list(filters=ProductListFilter(status="all", tag=tag))
    assert {p.external_id for p in page.rows} == expected and not page.unknown_tag


def test_html_product_list_unknown_tag(vocabulary, operator_client):
    assert listed_html(operator_client, "nope") == []
    assert "No tag is called" in operator_client.get("/products/", {"tag": "nope"}).content.decode()


# --- the product list: API filter ------------------------------------------------------------------------


def listed_api(api, tag: str) -> set[str]:
    response = api.get("/api/v1/products/", {"tag": tag})
    assert response.status_code == 200, response.content
    return {p["external_id"] for p in response.json()["results"]}


def test_api_product_list_filter(vocabulary, operator_api):
    assert listed_api(operator_api, "TEE SHIRT") == {"p-shirt", "p-merged"}  # alias
    assert listed_api(operator_api, "tshirt") == {"p-shirt", "p-merged"}  # merged name
    assert listed_api(operator_api, "Vintage") == {"p-vintage"}  # deactivated: same as the HTML list
    response = operator_api.get("/api/v1/products/", {"tag": "nope"})
    assert response.status_code == 400 and "tag" in response.json()["fields"]


# --- import ------------------------------------------------------------------------------------------------


def test_import_applies_aliases_and_merged_names_skips_deactivated_creates_unknown(vocabulary, tmp_path):
    rows = [
        {"id": "i-alias", "title": "A", "tags": ["Tee-Shirt"]},
        {"id": "i-merged", "title": "M", "tags": ["TSHIRT"]},
        {"id": "i-vintage", "title": "V", "tags": ["vintage", "Shirts"]},
        {"id": "i-new", "title": "N", "tags": ["Linen Blend"]},
    ]
    path = tmp_path / "catalog.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    import_products(path)  # the PostgreSQL writer (the ORM writer: below)
    assert tags_of("i-alias") == {"Shirts"}
    assert tags_of("i-merged") == {"Shirts"}
    assert tags_of("i-vintage") == {"Shirts"}  # the deactivated tag is not applied
    assert Tag.objects.filter(normalized_name="vintage").count() == 1  # nor created again
    assert tags_of("i-new") == {"Linen Blend"}


def test_import_orm_writer_skips_deactivated_tags(vocabulary):
    rows = [ProductRow(line=1, external_id="g1", title="G", tags=["vintage", "tee shirt"])]
    _, _, ids = write_products_generic(rows)
    write_tags_generic(rows, ids, TagResolver())
    assert tags_of("g1") == {"Shirts"}


def test_vocabulary_import_parents_resolve_like_everywhere_else(vocabulary, tmp_path):
    path = tmp_path / "tags.csv"
    path.write_text(
        "name,parent\nPolo,Tee-Shirt\nHenley,TSHIRT\nRetro,vintage\nLinen,nope\n", encoding="utf-8"
    )
    result = import_taxonomy(path)
    assert [(error.line, error.field) for error in result.errors] == [(5, "parent")]  # unknown: refused
    path.write_text("name,parent\nPolo,Tee-Shirt\nHenley,TSHIRT\nRetro,vintage\n", encoding="utf-8")
    assert import_taxonomy(path).errors == []
    parents = dict(
        Tag.objects.filter(name__in=["Polo", "Henley", "Retro"]).values_list("name", "parent__name")
    )
    assert parents == {"Polo": "Shirts", "Henley": "Shirts", "Retro": "Vintage"}  # alias, merged, deactivated


# --- export ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["copy", "python"])
def test_export_writes_canonical_active_tags_and_lists_the_others(vocabulary, operator, engine):
    product = Product.objects.create(external_id="e1", title="E1")
    review_submit(product=product, user=operator, tags=["tee shirt"])  # applied through an alias
    export = exports.approved_tags_export(file_format="jsonl", engine=engine)
    records = [json.loads(line) for line in b"".join(export.chunks()).decode().splitlines()]
    products = {r["external_id"]: {t["name"] for t in r["tags"]} for r in records if r["type"] == "product"}
    assert products["e1"] == {"Shirts"}  # the canonical name, not the alias
    assert products["p-merged"] == {"Shirts"}  # a merged tag's products export under its target
    assert products["p-vintage"] == set()  # a deactivated tag is not exported...
    deleted = {r["name"]: (r["reason"], r["replaced_by"]) for r in records if r["type"] == "deleted_tag"}
    assert deleted == {"Tshirt": ("merged", "Shirts"), "Vintage": ("deactivated", None)}  # ...but listed


# --- taxonomy pages ---------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize(
    ("picked", "parent"), [("tee shirt", "Shirts"), ("TSHIRT", "Shirts"), ("vintage", "Vintage")]
)
def test_taxonomy_page_picker_resolves_alias_merged_and_deactivated(vocabulary, admin_client, picked, parent):
    child = tag_create(name="Polo")
    response = admin_client.post(reverse("taxonomy-move", args=[child.pk]), {"parent": picked})
    assert response.status_code == 302, response.content.decode()
    child.refresh_from_db()
    assert child.parent.name == parent


def test_taxonomy_page_picker_unknown_name(vocabulary, admin_client):
    child = tag_create(name="Polo")
    response = admin_client.post(reverse("taxonomy-move", args=[child.pk]), {"parent": "nope"})
    assert response.status_code == 400 and "No tag is named" in response.content.decode()


def test_taxonomy_page_merge_picker(vocabulary, admin_client):
    source = tag_create(name="Retro")
    url = reverse("taxonomy-merge", args=[source.pk])
    preview = admin_client.get(url, {"into": "TSHIRT"})  # a merged name picks the tag it went to
    assert preview.status_code == 200 and preview.context["target"] == vocabulary["shirts"]
    preview = admin_client.get(url, {"into": "vintage"})  # a deactivated tag is found...
    assert preview.status_code == 200 and preview.context["target"] == vocabulary["vintage"]
    refused = admin_client.post(url, {"into": vocabulary["vintage"].pk}, follow=True)  # ...the merge says no
    assert "deactivated" in refused.content.decode()
    assert Tag.objects.get(pk=source.pk).merged_into_id is None


# --- the review card's add-tag check and the single-name lookup ---------------------------------------------


def test_review_card_tag_check(vocabulary, operator_client):
    def check(name: str) -> dict:
        return operator_client.get("/review/tags/check/", {"name": name}).json()

    assert check("tee shirt") == {"ok": True, "name": "Shirts", "new": False, "message": ""}
    assert check("tshirt")["name"] == "Shirts"
    refused = check("vintage")
    assert refused["ok"] is False and refused["new"] is False and "deactivated" in refused["message"]
    assert tag_lookup("vintage") == vocabulary["vintage"] and tag_resolve("TSHIRT").name == "Shirts"
