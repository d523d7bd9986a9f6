"""/api/v1/ routes of the taxonomy: tags, their aliases, merges."""

from django.urls import path

from annotation.api.taxonomy.views import TagAliasApi, TagDetailApi, TagListApi, TagMergeApi

urlpatterns = [
    path("tags/", TagListApi.as_view(), name="api-tags"),
    path("tags/<int:pk>/", TagDetailApi.as_view(), name="api-tag"),
    path("tags/<int:pk>/aliases/", TagAliasApi.as_view(), name="api-tag-aliases"),
    path("tags/<int:pk>/merge/", TagMergeApi.as_view(), name="api-tag-merge"),
]
