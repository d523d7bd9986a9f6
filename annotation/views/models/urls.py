"""/models/: the model registry page (admins)."""

from django.urls import path

from annotation.views.models.views import (
    AutoApprovalRevertView,
    AutoApprovalSettingsView,
    ModelActivateView,
    ModelsLiveView,
    ModelsPageView,
    ModelTrainView,
    QueueStrategyView,
)

urlpatterns = [
    path("models/", ModelsPageView.as_view(), name="models"),
    path("models/live/", ModelsLiveView.as_view(), name="models-live"),
    path("models/train/", ModelTrainView.as_view(), name="models-train"),
    path("models/<int:pk>/activate/", ModelActivateView.as_view(), name="models-activate"),
    path("models/strategy/", QueueStrategyView.as_view(), name="models-strategy"),
    path("models/auto-approval/", AutoApprovalSettingsView.as_view(), name="models-auto-approval"),
    path(
        "models/<int:pk>/revert-auto-approvals/",
        AutoApprovalRevertView.as_view(),
        name="models-revert-auto-approvals",
    ),
]
