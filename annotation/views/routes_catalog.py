"""Catalog HTML routes: the taxonomy pages (admins) and the imports/exports pages."""

from django.urls import path

from annotation.views import exports_page, taxonomy

urlpatterns = [
    # Taxonomy (annotation/views/taxonomy.py)
    path("tags/", taxonomy.TaxonomyView.as_view(), name="taxonomy"),
    path("tags/tree/", taxonomy.TaxonomyTreeView.as_view(), name="taxonomy-tree"),
    path("tags/search/", taxonomy.TaxonomySearchView.as_view(), name="taxonomy-search"),
    path("tags/options/", taxonomy.TaxonomyPickerOptionsView.as_view(), name="taxonomy-options"),
    path("tags/create/", taxonomy.TaxonomyCreateView.as_view(), name="taxonomy-create"),
    path("tags/settings/", taxonomy.TaxonomySettingsView.as_view(), name="taxonomy-settings"),
    path("tags/<int:pk>/", taxonomy.TaxonomyTagView.as_view(), name="taxonomy-tag"),
    path("tags/<int:pk>/rename/", taxonomy.TaxonomyRenameView.as_view(), name="taxonomy-rename"),
    path("tags/<int:pk>/move/", taxonomy.TaxonomyMoveView.as_view(), name="taxonomy-move"),
    path("tags/<int:pk>/aliases/", taxonomy.TaxonomyAliasView.as_view(), name="taxonomy-alias-add"),
    path("tags/<int:pk>/active/", taxonomy.TaxonomyActiveView.as_view(), name="taxonomy-active"),
    path("tags/<int:pk>/merge/", taxonomy.TaxonomyMergeView.as_view(), name="taxonomy-merge"),
    # Exports (annotation/views/exports_page.py)
    path("exports/", exports_page.ExportsPageView.as_view(), name="exports"),
    path("exports/jobs/", exports_page.ExportsJobsView.as_view(), name="exports-jobs"),
    path("exports/<int:pk>/download/", exports_page.ExportDownloadView.as_view(), name="export-download"),
]
