"""Django admin: browse and search tags, model versions and jobs (staff users).

Changes to the taxonomy go through the tag services (annotation.services.tags) so the folding rule,
the alias table and the export stamps stay consistent: the admin lists and searches tags and links to
the taxonomy page for edits, and its actions call the same services. Foreign keys to tags use
autocomplete/raw-id widgets, so a 10,000-tag vocabulary never becomes a giant <select>.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from annotation.models import (
    ExportJob,
    ImportJob,
    ModelVersion,
    Setting,
    SuggestionRefresh,
    Tag,
    TagAlias,
    TrainingJob,
)
from annotation.services.tags import TagRuleError, tag_activate, tag_deactivate


class TagAliasInline(admin.TabularInline):
    model = TagAlias
    extra = 0
    fields = ("name", "normalized_name", "created_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # aliases are added on the taxonomy page (tag_alias_add checks every name)


class IsRootFilter(admin.SimpleListFilter):
    title = "level"
    parameter_name = "level"

    def lookups(self, request, model_admin):
        return (("root", "Top level"), ("child", "Below another tag"))

    def queryset(self, request, queryset):
        if self.value() == "root":
            return queryset.filter(parent__isnull=True)
        if self.value() == "child":
            return queryset.filter(parent__isnull=False)
        return queryset


class MergedFilter(admin.SimpleListFilter):
    title = "merged"
    parameter_name = "merged"

    def lookups(self, request, model_admin):
        return (("no", "Canonical"), ("yes", "Merged into another tag"))

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(merged_into__isnull=True)
        if self.value() == "yes":
            return queryset.filter(merged_into__isnull=False)
        return queryset


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "parent",
        "is_active",
        "merged_into",
        "alias_count",
        "taxonomy_page",
        "updated_at",
    )
    list_filter = ("is_active", IsRootFilter, MergedFilter)
    search_fields = ("name", "normalized_name", "aliases__normalized_name")
    list_select_related = ("parent", "merged_into")
    raw_id_fields = ("parent", "merged_into")
    readonly_fields = (
        "name",
        "normalized_name",
        "parent",
        "merged_into",
        "is_active",
        "created_at",
        "updated_at",
    )
    fields = (*readonly_fields, "description")
    inlines = (TagAliasInline,)
    ordering = ("normalized_name",)
    list_per_page = 100
    show_full_result_count = False  # no second COUNT(*) on every filtered page
    actions = ("deactivate_tags", "activate_tags")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(_alias_count=Count("aliases", distinct=True))

    @admin.display(description="aliases", ordering="_alias_count")
    def alias_count(self, obj: Tag) -> int:
        return obj._alias_count

    @admin.display(description="edit")
    def taxonomy_page(self, obj: Tag) -> str:
        return format_html('<a href="{}">taxonomy page</a>', reverse("taxonomy-tag", args=[obj.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tag_create on the taxonomy page folds the name and checks aliases

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # approved tags and the audit refer to tags: deactivate or merge instead

    @admin.action(description="Deactivate selected tags (no longer suggested or exported)")
    def deactivate_tags(self, request: HttpRequest, queryset: QuerySet[Tag]) -> None:
        for tag in queryset:
            tag_deactivate(tag=tag)
        messages.success(request, f"Deactivated {queryset.count()} tag(s).")

    @admin.action(description="Reactivate selected tags")
    def activate_tags(self, request: HttpRequest, queryset: QuerySet[Tag]) -> None:
        done, refused = 0, []
        for tag in queryset:
            try:
                tag_activate(tag=tag)
                done += 1
            except TagRuleError as exc:
                refused.append(f"{tag.name}: {exc}")
        messages.success(request, f"Reactivated {done} tag(s).")
        for reason in refused:
            messages.error(request, reason)


@admin.register(TagAlias)
class TagAliasAdmin(admin.ModelAdmin):
    list_display = ("name", "tag", "normalized_name", "created_at")
    search_fields = ("name", "normalized_name", "tag__name", "tag__normalized_name")
    autocomplete_fields = ("tag",)
    readonly_fields = ("name", "normalized_name", "tag", "created_at")
    list_select_related = ("tag",)
    list_per_page = 100
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "version",
        "state",
        "is_active",
        "micro_f1",
        "p_at_1",
        "train_size",
        "device",
        "created_at",
    )
    list_filter = ("state", "is_active", "tagger", "device")
    search_fields = ("version", "data_fingerprint")
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    date_hierarchy = "created_at"

    @admin.display(description="micro-F1")
    def micro_f1(self, obj: ModelVersion):
        return (obj.metrics or {}).get("micro_f1")

    @admin.display(description="P@1")
    def p_at_1(self, obj: ModelVersion):
        return (obj.metrics or {}).get("p@1")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from training jobs (models page, API, manage.py train)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class JobAdmin(admin.ModelAdmin):
    """Jobs are records of what ran: read-only, filterable by status and date."""

    list_filter = ("status",)
    date_hierarchy = "created_at"
    raw_id_fields = ("created_by",)
    list_per_page = 100

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ImportJob)
class ImportJobAdmin(JobAdmin):
    list_display = ("id", "source_name", "status", "rows_ok", "rows_rejected", "created_by", "created_at")
    search_fields = ("source_name",)


@admin.register(TrainingJob)
class TrainingJobAdmin(JobAdmin):
    list_display = ("id", "trigger", "status", "model_version", "created_by", "created_at", "finished_at")
    list_filter = ("status", "trigger")
    raw_id_fields = ("created_by", "model_version")


@admin.register(ExportJob)
class ExportJobAdmin(JobAdmin):
    list_display = ("id", "file_format", "status", "rows", "updated_since", "created_by", "created_at")


@admin.register(SuggestionRefresh)
class SuggestionRefreshAdmin(admin.ModelAdmin):
    list_display = ("id", "model_version", "status", "done", "total", "created_at", "finished_at")
    list_filter = ("status",)
    raw_id_fields = ("model_version",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Setting)
class SettingAdmin(admin.ModelAdmin):
    list_display = ("key", "value", "updated_by", "updated_at")
    search_fields = ("key",)
    raw_id_fields = ("updated_by",)
    readonly_fields = ("key", "value", "updated_by", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # each setting has its page (taxonomy, models) that validates and applies it


_default_admin_login = admin.site.login


def _admin_login_or_forbidden(request, extra_context=None):
    """A signed-in operator asking for the admin site gets 403, not another login form to try."""
    if request.user.is_authenticated and not (request.user.is_active and request.user.is_staff):
        raise PermissionDenied("The admin site is for TagStudio admins.")
    return _default_admin_login(request, extra_context)


admin.site.login = _admin_login_or_forbidden
