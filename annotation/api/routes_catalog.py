"""/api/v1/ routes of the catalog: products, tags, imports, the export, users and tokens.

The product detail takes any external id, "/" included (merchant SKUs contain slashes), except one that
ends in an action of the review routes (``…/review/``, ``…/release/``): this module is included before
them, so the pattern leaves those paths to annotation.api.routes_review.
"""

from django.urls import path, re_path

from annotation.api import export, imports, products, tags, users

# Path suffixes that belong to other routes under products/<external_id>/.
PRODUCT_ACTIONS = ("review", "release")
_ACTIONS = "|".join(PRODUCT_ACTIONS)
_EXTERNAL_ID = rf"(?P<external_id>(?:(?!/(?:{_ACTIONS})/$).)+)"

urlpatterns = [
    path("products/", products.ProductListApi.as_view(), name="api-products"),
    re_path(rf"^products/{_EXTERNAL_ID}/$", products.ProductDetailApi.as_view(), name="api-product"),
    path("tags/", tags.TagListApi.as_view(), name="api-tags"),
    path("tags/<int:pk>/", tags.TagDetailApi.as_view(), name="api-tag"),
    path("tags/<int:pk>/aliases/", tags.TagAliasApi.as_view(), name="api-tag-aliases"),
    path("tags/<int:pk>/merge/", tags.TagMergeApi.as_view(), name="api-tag-merge"),
    path("imports/", imports.ImportListApi.as_view(), name="api-imports"),
    path("imports/<int:pk>/", imports.ImportDetailApi.as_view(), name="api-import"),
    path("export/approved-tags/", export.ApprovedTagsExportApi.as_view(), name="api-export-approved-tags"),
    path("exports/", export.ExportJobListApi.as_view(), name="api-exports"),
    path("exports/<int:pk>/", export.ExportJobDetailApi.as_view(), name="api-export"),
    path("exports/<int:pk>/download/", export.ExportJobDownloadApi.as_view(), name="api-export-download"),
    path("me/", users.MeApi.as_view(), name="api-me"),
    path("me/token/", users.TokenRotateApi.as_view(), name="api-token-rotate"),
    path("users/", users.UserListApi.as_view(), name="api-users"),
    path("users/<int:pk>/token/", users.UserTokenApi.as_view(), name="api-user-token"),
]
