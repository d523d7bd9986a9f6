"""TagStudio's data model.

Design rules: database constraints make bad states unstorable (unique keys, foreign keys, checks,
partial unique indexes); the queue, the export and the dashboard read through the indexes declared
here; nothing a person decided is overwritten without a ReviewEvent that records it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone


class Tag(models.Model):
    """A canonical tag. ``normalized_name`` is the folding key (see annotation.taxonomy.normalize_tag_name)."""

    name = models.CharField(max_length=200)
    normalized_name = models.CharField(max_length=200, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    description = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=True)
    # Set when this tag was merged into another one; the merged tag stays as a tombstone so old
    # audit events and exports can name where it went.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["normalized_name"]
        constraints = [
            models.CheckConstraint(condition=~Q(parent=F("id")), name="tag_not_own_parent"),
            models.CheckConstraint(condition=~Q(merged_into=F("id")), name="tag_not_merged_into_self"),
            models.CheckConstraint(condition=~Q(name=""), name="tag_name_not_empty"),
        ]
        indexes = [models.Index(fields=["parent", "normalized_name"], name="tag_parent_name_idx")]

    def __str__(self) -> str:
        return self.name


class TagAlias(models.Model):
    """Another spelling of a tag (synonym). Resolves to its tag on every entry point."""

    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=200)
    normalized_name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["normalized_name"]
        verbose_name_plural = "tag aliases"

    def __str__(self) -> str:
        return f"{self.name} → {self.tag_id}"


class ReviewStatus(models.TextChoices):
    UNREVIEWED = "unreviewed", "Unreviewed"
    REVIEWED = "reviewed", "Reviewed"
    # Every decision the model made on it cleared the auto-approval cuts: out of the review queue until
    # an audit draw or a revert puts it back (annotation.services.auto_approval).
    AUTO = "auto", "Approved by the model"


class Product(models.Model):
    """A catalog product, keyed by the merchant's SKU (``external_id``)."""

    # Unique through Meta.constraints: a plain unique constraint, without the second
    # (varchar_pattern_ops) index Django adds for ``unique=True`` — nothing looks SKUs up by prefix.
    external_id = models.CharField(max_length=255)
    title = models.CharField(max_length=1000)
    description = models.TextField(blank=True, default="")
    brand = models.CharField(max_length=255, blank=True, default="")
    category_path = models.JSONField(default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    lang = models.CharField(max_length=16, blank=True, default="")
    image_url = models.URLField(max_length=2000, blank=True, default="")
    # sha256 of the text fields a tagger reads: suggestions/embeddings are recomputed when it changes.
    content_hash = models.CharField(max_length=64, default="")

    review_status = models.CharField(
        max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.UNREVIEWED
    )
    # Active-learning priority (higher = review first), recomputed after every suggestion refresh.
    priority = models.FloatField(default=0.0)
    # Dirty flag for the batched suggestion refresh (saleor pattern).
    needs_suggestion = models.BooleanField(default=True)
    # The model version whose suggestions are current for this product (cards never mix versions).
    suggested_by = models.ForeignKey(
        "ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # partial index below: NULL (never suggested) rows need no entry
    )

    # Review claim (lease): one operator at a time; an expired claim is free again.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claims",
        db_index=False,  # product_claim_idx (partial: only claimed products) serves every lookup
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    # The token of the card opened under the current claim: a new one for every new claim, cleared when
    # the product is submitted, skipped or released. A submit naming another token is stale.
    claim_token = models.UUIDField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # When the approved tags last changed: the export's incremental-sync key.
    tags_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        # Role permissions (annotation.roles maps them to the operator and admin groups).
        permissions = [
            ("review_product", "Can review products"),
            ("manage_tags", "Can manage the tag taxonomy"),
            ("manage_models", "Can train and activate model versions"),
            ("run_imports", "Can import catalogs"),
            ("run_exports", "Can export approved tags"),
            ("manage_users", "Can manage users and tokens"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["external_id"], name="product_external_id_unique"),
            models.CheckConstraint(condition=~Q(external_id=""), name="product_external_id_not_empty"),
            models.CheckConstraint(condition=~Q(title=""), name="product_title_not_empty"),
            models.CheckConstraint(
                condition=Q(review_status__in=ReviewStatus.values), name="product_review_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(claimed_by__isnull=True, claim_expires_at__isnull=True)
                | Q(claimed_by__isnull=False, claim_expires_at__isnull=False),
                name="product_claim_complete",
            ),
        ]
        indexes = [
            # The review queue: unreviewed, highest priority first, id as tie-break (keyset).
            models.Index(
                F("priority").desc(),
                F("id").asc(),
                name="product_queue_idx",
                condition=Q(review_status="unreviewed"),
            ),
            models.Index(fields=["review_status", "id"], name="product_status_id_idx"),
            models.Index(fields=["updated_at", "id"], name="product_updated_idx"),
            models.Index(fields=["tags_updated_at", "id"], name="product_tags_updated_idx"),
            models.Index(fields=["id"], name="product_needs_sugg_idx", condition=Q(needs_suggestion=True)),
            # Partial indexes: a catalog import writes millions of unclaimed, never-suggested rows, and
            # every index entry costs import time; only claimed/suggested rows are ever looked up.
            models.Index(
                fields=["claimed_by", "claim_expires_at"],
                name="product_claim_idx",
                condition=Q(claimed_by__isnull=False),
            ),
            models.Index(
                fields=["suggested_by"],
                name="product_suggested_by_idx",
                condition=Q(suggested_by__isnull=False),
            ),
            # Catalog search by category path prefix: the first three levels as text, so a prefix is an
            # equality on the leading columns (annotation.selectors.search.products_in_category writes the
            # same expressions). A B-tree on expressions works on SQLite (json_extract) as on PostgreSQL.
            models.Index(
                KeyTextTransform("0", "category_path"),
                KeyTextTransform("1", "category_path"),
                KeyTextTransform("2", "category_path"),
                name="product_category_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.external_id}: {self.title[:60]}"


class TagSource(models.TextChoices):
    REVIEW = "review", "Review"
    IMPORT = "import", "Import"
    BULK = "bulk", "Bulk edit"
    HIERARCHY = "hierarchy", "Implied by a child tag"
    MERGE = "merge", "Tag merge"
    # Approved by the model version named on the row, above a precision-gated score cut, no person yet.
    MODEL = "model", "Model (auto-approved)"


class ProductTag(models.Model):
    """An approved tag on a product: who or what approved it, and when."""

    # No single-column FK indexes: (product, tag) unique and (tag, product) cover both lookups, and
    # approver/model-version are NULL on imported rows (partial indexes below).
    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, related_name="approved_tags", db_index=False
    )
    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="product_tags", db_index=False)
    source = models.CharField(max_length=16, choices=TagSource.choices)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    # The model version whose suggestion was accepted, when the tag came from a suggestion.
    model_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    approved_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "tag"], name="product_tag_unique"),
            models.CheckConstraint(condition=Q(source__in=TagSource.values), name="product_tag_source_valid"),
        ]
        indexes = [
            models.Index(fields=["tag", "product"], name="product_tag_by_tag_idx"),
            models.Index(
                fields=["approved_by"],
                name="product_tag_approver_idx",
                condition=Q(approved_by__isnull=False),
            ),
            models.Index(
                fields=["model_version"],
                name="product_tag_version_idx",
                condition=Q(model_version__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_id}:{self.tag_id}"


class ModelState(models.TextChoices):
    TRAINING = "training", "Training"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ModelVersion(models.Model):
    """One trained tagger. Immutable once READY; at most one is active."""

    version = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=16, choices=ModelState.choices, default=ModelState.TRAINING)
    is_active = models.BooleanField(default=False)
    artifact_path = models.CharField(max_length=1000, blank=True, default="")
    tagger = models.CharField(max_length=64, default="default")
    base_model = models.CharField(max_length=500, blank=True, default="")
    device = models.CharField(max_length=32, blank=True, default="")
    config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    train_size = models.PositiveIntegerField(default=0)
    valid_size = models.PositiveIntegerField(default=0)
    data_fingerprint = models.CharField(max_length=64, blank=True, default="")
    duration_s = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_model"
            ),
            models.CheckConstraint(
                condition=Q(is_active=False) | Q(state="ready"), name="active_model_is_ready"
            ),
            models.CheckConstraint(condition=Q(state__in=ModelState.values), name="model_state_valid"),
        ]

    def __str__(self) -> str:
        return self.version


class Suggestion(models.Model):
    """A tag the model suggests for a product, stamped with the model version that made it."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="suggestions")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="suggestions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="suggestions")
    score = models.FloatField()
    # Whether the model would apply it after its thresholds and post-processing.
    selected = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["product", "model_version", "tag"], name="suggestion_unique_per_version"
            ),
            models.CheckConstraint(
                condition=Q(score__gte=0.0) & Q(score__lte=1.0), name="suggestion_score_0_1"
            ),
        ]
        indexes = [
            models.Index(fields=["model_version", "tag"], name="suggestion_version_tag_idx"),
            # A tag's candidate grid (annotation.selectors.bulk): one version's suggestions of one tag in
            # score order, keyset on (score, product). Read forwards for "score ascending", backwards for
            # "score descending"; ``selected`` rides along so a page needs no suggestion heap fetch.
            models.Index(
                fields=["tag", "model_version", "score", "product"],
                include=["selected"],
                name="suggestion_tag_score_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_id}:{self.tag_id}@{self.model_version_id}={self.score:.2f}"


class ReviewAction(models.TextChoices):
    SUBMIT = "submit", "Submit"
    UNDO = "undo", "Undo"
    SKIP = "skip", "Skip"
    # One product's decision on one tag, made from a tag's candidate grid (annotation.services.bulk).
    BULK = "bulk", "Bulk decision"


class ReviewEvent(models.Model):
    """Audit trail: one row per review decision, with what was shown and what was decided."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="review_events")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="review_events",
    )
    action = models.CharField(max_length=16, choices=ReviewAction.choices)
    created_at = models.DateTimeField(default=timezone.now)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # [{"tag": name, "tag_id": id, "score": float, "selected": bool, "model_version": version, "visible": bool}]:
    # the suggestions of the card's version ("visible": on the card, not behind an unopened "more").
    shown = models.JSONField(default=list, blank=True)
    previous_tags = models.JSONField(default=list, blank=True)
    final_tags = models.JSONField(default=list, blank=True)
    accepted = models.JSONField(default=list, blank=True)
    rejected = models.JSONField(default=list, blank=True)
    added = models.JSONField(default=list, blank=True)
    removed = models.JSONField(default=list, blank=True)
    # For an undo: the submit event it reverts.
    reverts = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reverted_by"
    )
    # A submit made with a card's claim token stores it (at most once: see review_claim_token_once) and
    # a digest of what it submitted; a repeat with the same token and body replays this event.
    claim_token = models.UUIDField(null=True, blank=True)
    submit_digest = models.CharField(max_length=64, blank=True, default="")
    # The card started with the model's selected chips checked (None: not recorded, e.g. older events).
    prechecked = models.BooleanField(null=True, blank=True)
    # The operator changed the card's starting tags (False: accepted the card unchanged; None: unknown).
    edited = models.BooleanField(null=True, blank=True)
    # A bulk decision (and its undo): the one tag it decided and the bulk action it belongs to. NULL on
    # card events, which decide every tag of the product.
    tag = models.ForeignKey(
        "Tag", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    bulk_action = models.ForeignKey(
        "BulkAction", null=True, blank=True, on_delete=models.PROTECT, related_name="events", db_index=False
    )

    # Not stored: set by annotation.services.reviews.review_submit on the first event it hands back for a
    # repeated submit of the same card.
    replayed = False

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(action__in=ReviewAction.values), name="review_action_valid"),
            models.CheckConstraint(
                condition=Q(action="undo", reverts__isnull=False)
                | (~Q(action="undo") & Q(reverts__isnull=True)),
                name="review_undo_has_target",
            ),
            # One submit per card: two simultaneous identical submits cannot both be stored.
            models.UniqueConstraint(
                fields=["claim_token"], condition=Q(claim_token__isnull=False), name="review_claim_token_once"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "created_at"], name="review_user_time_idx"),
            models.Index(fields=["created_at"], name="review_time_idx"),
            models.Index(fields=["product", "created_at"], name="review_product_time_idx"),
            # "Has this product's tag T been decided in bulk?" (the candidate grid's status filter, the
            # precision bands): probed per product. Partial: card events carry no tag.
            models.Index(
                fields=["product", "tag"], name="review_product_tag_idx", condition=Q(tag__isnull=False)
            ),
            models.Index(
                fields=["bulk_action", "id"],
                name="review_bulk_action_idx",
                condition=Q(bulk_action__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.product_id} by {self.user_id}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


OPEN_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class Job(models.Model):
    """Common fields of background jobs; state moves only forward via conditional UPDATEs."""

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # While running: {"attempt": n, "worker": "host:pid", "heartbeat_at": iso} (annotation.services
    # .worker_liveness), plus what each kind reports; "lost": [{"attempt", "worker", "last_seen"}] lists the
    # attempts whose worker died (annotation.services.jobs_recovery).
    progress = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]


class ImportJob(Job):
    """A catalog import: file in, rows upserted, rejected rows reported with line, field and reason."""

    source_name = models.CharField(max_length=500)
    file_path = models.CharField(max_length=1000)
    file_format = models.CharField(max_length=8)
    ignore_tags = models.BooleanField(default=False)
    rows_total = models.PositiveBigIntegerField(default=0)
    rows_ok = models.PositiveBigIntegerField(default=0)
    rows_rejected = models.PositiveBigIntegerField(default=0)
    products_created = models.PositiveBigIntegerField(default=0)
    products_updated = models.PositiveBigIntegerField(default=0)
    # [{"line": n, "field": name, "reason": text}] — the first IMPORT_MAX_ERRORS_KEPT of them.
    errors = models.JSONField(default=list, blank=True)

    class Meta(Job.Meta):
        constraints = [
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="import_status_valid"),
            models.CheckConstraint(condition=Q(file_format__in=["jsonl", "csv"]), name="import_format_valid"),
        ]


class TrainingTrigger(models.TextChoices):
    MANUAL = "manual", "Models page"
    API = "api", "API"
    COMMAND = "command", "Command line"
    AUTO = "auto", "Review threshold"
    BOOTSTRAP = "bootstrap", "First model"


class TrainingJob(Job):
    trigger = models.CharField(max_length=16, choices=TrainingTrigger.choices)
    # A constant column so that a partial unique index allows one open (queued/running) job at a time.
    queue = models.CharField(max_length=16, default="train", editable=False)
    model_version = models.OneToOneField(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_job"
    )
    # progress (from Job): also {"phase": str, "step": int, "total": int|None, "elapsed_s": float,
    # "eta_s": float|None}
    log = models.TextField(blank=True, default="")
    # Reviews counted when this job was requested: the auto-trigger counts new reviews since then.
    reviews_at_request = models.PositiveBigIntegerField(default=0)
    celery_task_id = models.CharField(max_length=64, blank=True, default="")

    class Meta(Job.Meta):
        constraints = [
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="training_status_valid"),
            models.UniqueConstraint(
                fields=["queue"],
                condition=Q(status__in=["queued", "running"]),
                name="one_open_training_job",
            ),
        ]


class ExportJob(Job):
    file_format = models.CharField(max_length=8)
    updated_since = models.DateTimeField(null=True, blank=True)
    file_path = models.CharField(max_length=1000, blank=True, default="")
    rows = models.PositiveBigIntegerField(default=0)
    high_water_mark = models.DateTimeField(null=True, blank=True)

    class Meta(Job.Meta):
        constraints = [
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="export_status_valid"),
            models.CheckConstraint(
                condition=Q(file_format__in=["jsonl", "csv", "json"]), name="export_format_valid"
            ),
        ]


class BulkKind(models.TextChoices):
    DECIDE = "decide", "Accept or reject"
    UNDO = "undo", "Undo"


class BulkAction(Job):
    """One bulk decision on one tag from its candidate grid (or the undo of one), and its job.

    ``selection`` is what was asked: ``{"accept": [product ids], "reject": [product ids]}`` or
    ``{"filter": {...CandidateFilter...}, "accept": bool}``. Small selections run in the request (the row
    is written already running); above ``BULK_REVIEW_INLINE_MAX`` products the row is queued and a Celery
    task runs it, counting ``done`` and ``skipped`` as it goes. Each decided product has one ReviewEvent
    (action ``bulk``) pointing here; an undo is another BulkAction whose events revert those.
    """

    kind = models.CharField(max_length=16, choices=BulkKind.choices, default=BulkKind.DECIDE)
    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="+")
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    undoes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="undone_by"
    )
    selection = models.JSONField(default=dict, blank=True)
    # The ancestors an accept approved along with the tag (hierarchy closure): what its undo removes.
    implied_tag_ids = models.JSONField(default=list, blank=True)
    total = models.PositiveBigIntegerField(default=0)
    done = models.PositiveBigIntegerField(default=0)
    skipped = models.PositiveBigIntegerField(default=0)
    # [{"external_id": sku, "reason": text}]: the first BULK_SKIPPED_KEPT skipped products.
    skipped_items = models.JSONField(default=list, blank=True)

    class Meta(Job.Meta):
        constraints = [
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="bulk_status_valid"),
            models.CheckConstraint(condition=Q(kind__in=BulkKind.values), name="bulk_kind_valid"),
            models.CheckConstraint(
                condition=Q(kind="undo", undoes__isnull=False) | (~Q(kind="undo") & Q(undoes__isnull=True)),
                name="bulk_undo_has_target",
            ),
        ]


class SuggestionRefresh(models.Model):
    """Progress of recomputing suggestions after a model version became active."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="refreshes")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total = models.PositiveBigIntegerField(default=0)
    done = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class Setting(models.Model):
    """Runtime settings an admin changes in the UI (e.g. the active-learning strategy)."""

    key = models.CharField(max_length=100, unique=True)
    value = models.JSONField()
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return self.key


class AutoApprovalVersion(models.Model):
    """Auto-approval's record of one model version: the cuts it approves above, the evidence they rest on,
    how much it approved, and whether an admin reverted it (a reverted version approves nothing more)."""

    model_version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="auto_approval")
    # {"global": {"approve": float|None, "reject": float|None, "n": int, "k": int, "lower": float|None},
    #  "per_tag": {"<tag id>": {same}}, "target": float, "confidence": float}
    cuts = models.JSONField(default=dict, blank=True)
    # {"validation_products"/"_pairs", "out_of_fold_products"/"_pairs", "review_products"/"_pairs",
    #  "tags_with_own_cut", "exit": the exit gate, "last_pass": what the latest pass approved} (ints)
    evidence = models.JSONField(default=dict, blank=True)
    # Cumulative: every (product, tag) pair / product this version ever approved.
    approved_pairs = models.PositiveBigIntegerField(default=0)
    approved_products = models.PositiveBigIntegerField(default=0)
    computed_at = models.DateTimeField(null=True, blank=True)
    reverted_at = models.DateTimeField(null=True, blank=True)
    reverted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"auto-approval of {self.model_version_id}"


class AutoApprovalAudit(models.Model):
    """One auto-approved product drawn at random into the front of the review queue. Its review says how
    many of the version's approved pairs a person kept: the version's realised precision."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="auto_audits")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="auto_audits")
    drawn_at = models.DateTimeField(default=timezone.now)
    # The version's model-approved pairs on the product when it was drawn.
    approved_pairs = models.PositiveIntegerField(default=0)
    # Filled by the review (cleared again if that review is undone).
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_event = models.ForeignKey(
        ReviewEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    audited_pairs = models.PositiveIntegerField(null=True, blank=True)  # model pairs the review saw
    confirmed_pairs = models.PositiveIntegerField(null=True, blank=True)  # of those, kept by the reviewer
    added_tags = models.PositiveIntegerField(null=True, blank=True)  # tags the reviewer had to add

    class Meta:
        ordering = ["-drawn_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "model_version"], name="auto_audit_once_per_version"),
        ]
        indexes = [
            models.Index(
                fields=["product"], name="auto_audit_pending_idx", condition=Q(reviewed_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"audit {self.product_id}@{self.model_version_id}"
