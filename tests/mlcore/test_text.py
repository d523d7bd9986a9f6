from __future__ import annotations

from mlcore.text import clean_text, lexical_tokens, normalize_text, product_text
from mlcore.types import ProductRecord


def test_clean_text_strips_html_controls_and_applies_nfkc():
    raw = "<p>Ｆｕｌｌ&amp;width\u200b</p>\x07  Mug\n\tSet"
    assert clean_text(raw) == "Full&width Mug Set"
    assert normalize_text("Ｍｕｇ ÄRGER") == "mug ärger"
    assert clean_text(None) == ""


def test_chinese_is_segmented_with_jieba_and_latin_kept_whole():
    tokens = lexical_tokens(normalize_text("清香型铁观音礼盒装 Tea-Set 500g"))
    assert "铁观音" in tokens
    assert "tea" in tokens and "set" in tokens and "500g" in tokens
    assert all(len(t) < 6 for t in tokens)  # jieba cut the run, it is not one long token


def test_product_text_weights_title_and_truncates_description():
    record = ProductRecord(
        id="1",
        title="Red <b>Mug</b>",
        description="x" * 5000,
        brand="ACME",
        category_path=("Kitchen", "Mugs"),
        attributes={"colour": "red", "size": None},
    )
    text = product_text(record, max_description_chars=100)
    assert text.count("red mug") == 2
    assert "acme" in text and "kitchen > mugs" in text and "colour: red" in text
    assert "size" not in text
    assert text.count("x") <= 100
