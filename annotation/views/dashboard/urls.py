"""/dashboard/: catalog, team and model figures (operators and admins)."""

from django.urls import path

from annotation.views.dashboard.views import DashboardPerTagView, DashboardSuspiciousView, DashboardView

urlpatterns = [
    path("dashboard/", DashboardView.as_view(), name="dashboard"),
    path("dashboard/per-tag/", DashboardPerTagView.as_view(), name="dashboard-per-tag"),
    path("dashboard/suspicious/", DashboardSuspiciousView.as_view(), name="dashboard-suspicious"),
]
