"""Shapes of the review API: the claimed product with its suggestions, the submit body, the submit result."""

from __future__ import annotations

from rest_framework import serializers

from annotation.services.reviews import MAX_TAGS_PER_REVIEW
from annotation.taxonomy.names import TAG_NAME_MAX_LENGTH


class ReviewProductSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    brand = serializers.CharField()
    category_path = serializers.JSONField()
    attributes = serializers.JSONField()
    lang = serializers.CharField()
    image_url = serializers.CharField()
    review_status = serializers.CharField()
    priority = serializers.FloatField()


class TitleMentionSerializer(serializers.Serializer):
    start = serializers.IntegerField(
        help_text="Offset of the mention's first character in `product.title` (0-based, in Unicode code points)."
    )
    end = serializers.IntegerField(help_text="Offset just after the mention's last character (exclusive).")
    text = serializers.CharField(help_text="The mention as it is written in the title: `title[start:end]`.")


class SuggestionReasonSerializer(serializers.Serializer):
    """Why the model suggests a tag: the same reason the HTML review card shows on the tag's chip."""

    summary = serializers.CharField(
        help_text=(
            'The reason in a few words, e.g. `"Black" in the title`, `like "Puma Men Black Tshirt" and 2 '
            "more` or `words: black, tee`."
        )
    )
    title_mentions = TitleMentionSerializer(
        many=True, help_text="Where the title mentions the tag (the HTML card highlights these)."
    )
    neighbours = serializers.ListField(
        child=serializers.CharField(),
        help_text="Titles of the most similar approved products that carry the tag (at most 3).",
    )
    words = serializers.ListField(
        child=serializers.CharField(),
        help_text="The product's words that weigh most for the tag in the model (at most 3).",
    )


class SuggestionOutSerializer(serializers.Serializer):
    tag = serializers.CharField(source="name")
    score = serializers.FloatField()
    selected = serializers.BooleanField(
        help_text="The model would apply it after its thresholds (what the catalog and the export use)."
    )
    checked = serializers.BooleanField(
        help_text=(
            "The card proposes it (starts checked): an approved tag, or a selected one the model rates at "
            "least `REVIEW_PRECHECK_MIN_SCORE` likely (the best selected one when none is). A submit's "
            "`edited` compares the tags sent with "
            "these (with pre-checking off: the selected ones scoring at least that) plus the approved tags."
        )
    )
    model_version = serializers.CharField()
    reason = SuggestionReasonSerializer(
        allow_null=True,
        help_text=(
            "Why the model suggests this tag. Null while the model version is not loaded in the serving "
            "process yet (it loads in the background: a card never waits for it, so the first cards after "
            "a start or a new version come without reasons), when its artifact is not on this machine, and "
            "for a tag the model does not know. What explaining cost is in the `Server-Timing` header "
            "(`explain`; `explain-load` while waiting for the model)."
        ),
    )


class ApprovedTagOutSerializer(serializers.Serializer):
    tag = serializers.CharField(source="name")
    source = serializers.CharField(source="approved_source")


class ReviewCardSerializer(serializers.Serializer):
    """POST /review/next/: the claimed product, its current suggestions by score, and the claim expiry."""

    product = ReviewProductSerializer()
    suggestions = SuggestionOutSerializer(many=True)
    approved_tags = ApprovedTagOutSerializer(many=True)
    model_version = serializers.CharField(
        allow_null=True, help_text="Version of the suggestions (none: no model)."
    )
    claim_expires_at = serializers.DateTimeField()
    claim = serializers.UUIDField(
        help_text=(
            "This card's claim token. Send it back as `claim` with the submit: the submit is then accepted "
            "once (a repeat with the same tags returns the first result, nothing is stored twice) and is "
            "refused with 409 `stale_claim` when the product changed since this card was handed out. "
            "Calling review/next again while you hold the claim returns the same token."
        )
    )


class ReviewSubmitSerializer(serializers.Serializer):
    tags = serializers.ListField(
        child=serializers.CharField(max_length=TAG_NAME_MAX_LENGTH, allow_blank=False, trim_whitespace=True),
        allow_empty=True,
        max_length=MAX_TAGS_PER_REVIEW,
        help_text=(
            "The product's final tags (names or aliases). An empty list means no tag applies; with a "
            "`claim`, an empty list when the model selected tags also needs `no_tag_applies: true`."
        ),
    )
    claim = serializers.UUIDField(
        required=False,
        allow_null=True,
        default=None,
        help_text=(
            "Optional: the `claim` token of the review/next card this submit answers. With it, the submit is "
            "idempotent (the same tags sent again return the first result with the same status and body, "
            "and store no second review) and a token that no longer matches the product (saved with other "
            "tags, skipped, released or claimed again since) answers 409 `stale_claim`. Without it the "
            "submit behaves as before tokens existed."
        ),
    )
    no_tag_applies = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text=(
            "Confirms an empty `tags` list although the model selected tags for the product. Required "
            "(true) for such a submit when a `claim` is sent, or when this field is sent as false: "
            "otherwise 400 `no_tags_unconfirmed` with the suggested tags in `fields.no_tag_applies`. "
            "Omitted without a `claim`: no confirmation is asked (the contract before this field)."
        ),
    )


class ReviewResultSerializer(serializers.Serializer):
    product = serializers.CharField(source="product.external_id")
    review_status = serializers.CharField(source="product.review_status")
    event_id = serializers.IntegerField(source="id")
    model_version = serializers.CharField(source="model_version.version", allow_null=True, default=None)
    tags = serializers.ListField(child=serializers.CharField(), source="final_tags")
    accepted = serializers.ListField(child=serializers.CharField())
    rejected = serializers.ListField(child=serializers.CharField())
    added = serializers.ListField(child=serializers.CharField())
    removed = serializers.ListField(child=serializers.CharField())
    edited = serializers.BooleanField(
        allow_null=True,
        help_text=(
            "Whether the submit changed the card's proposal (the approved tags plus the model's selected "
            "tags scoring at least `REVIEW_PRECHECK_MIN_SCORE`, or its best selected one: the suggestions "
            "marked `checked` while pre-checking is on): false when that proposal was accepted unchanged."
        ),
    )


class ReleaseResultSerializer(serializers.Serializer):
    product = serializers.CharField()
    released = serializers.BooleanField(help_text="False when the product had no claim.")


class UndoResultSerializer(serializers.Serializer):
    product = serializers.CharField(source="product.external_id")
    review_status = serializers.CharField(source="product.review_status")
    event_id = serializers.IntegerField(source="id")
    reverts = serializers.IntegerField(source="reverts_id")
    tags = serializers.ListField(child=serializers.CharField(), source="final_tags")
    claim_expires_at = serializers.DateTimeField(source="product.claim_expires_at")
