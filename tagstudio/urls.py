from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from annotation.api.schema import SchemaApi
from annotation.views.accounts.views import favicon, healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("api/schema/", SchemaApi.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("annotation.api.urls")),
    path("", include("annotation.urls")),
]

# An unrouted path under /api/ answers in the API's JSON error shape; other paths get Django's 404 page.
handler404 = "annotation.api.errors.api_page_not_found"
