"""HTML routes of the taxonomy pages (admins): the tag tree, search, create, rename, move, alias, merge."""

from django.urls import path

from annotation.views.taxonomy import views

urlpatterns = [
    path("tags/", views.TaxonomyView.as_view(), name="taxonomy"),
    path("tags/tree/", views.TaxonomyTreeView.as_view(), name="taxonomy-tree"),
    path("tags/search/", views.TaxonomySearchView.as_view(), name="taxonomy-search"),
    path("tags/options/", views.TaxonomyPickerOptionsView.as_view(), name="taxonomy-options"),
    path("tags/create/", views.TaxonomyCreateView.as_view(), name="taxonomy-create"),
    path("tags/settings/", views.TaxonomySettingsView.as_view(), name="taxonomy-settings"),
    path("tags/<int:pk>/", views.TaxonomyTagView.as_view(), name="taxonomy-tag"),
    path("tags/<int:pk>/rename/", views.TaxonomyRenameView.as_view(), name="taxonomy-rename"),
    path("tags/<int:pk>/move/", views.TaxonomyMoveView.as_view(), name="taxonomy-move"),
    path("tags/<int:pk>/aliases/", views.TaxonomyAliasView.as_view(), name="taxonomy-alias-add"),
    path("tags/<int:pk>/active/", views.TaxonomyActiveView.as_view(), name="taxonomy-active"),
    path("tags/<int:pk>/merge/", views.TaxonomyMergeView.as_view(), name="taxonomy-merge"),
]
