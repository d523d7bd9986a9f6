"""/api/v1/ routes of the learning loop: model versions, training jobs, suggestion refresh, queue strategy,
auto-approval."""

from django.urls import path

from annotation.api.models.views import (
    AutoApprovalApi,
    ModelTrainApi,
    ModelVersionActivateApi,
    ModelVersionDetailApi,
    ModelVersionListApi,
    ModelVersionRevertAutoApprovalsApi,
    QueueStrategyApi,
    SuggestionRefreshLatestApi,
    TrainingJobDetailApi,
    TrainingJobListApi,
)

urlpatterns = [
    path("models/", ModelVersionListApi.as_view(), name="api-models"),
    path("models/train/", ModelTrainApi.as_view(), name="api-models-train"),
    path("models/<int:pk>/", ModelVersionDetailApi.as_view(), name="api-model"),
    path("models/<int:pk>/activate/", ModelVersionActivateApi.as_view(), name="api-model-activate"),
    path(
        "models/<int:pk>/revert-auto-approvals/",
        ModelVersionRevertAutoApprovalsApi.as_view(),
        name="api-model-revert-auto-approvals",
    ),
    path("auto-approval/", AutoApprovalApi.as_view(), name="api-auto-approval"),
    path("training-jobs/", TrainingJobListApi.as_view(), name="api-training-jobs"),
    path("training-jobs/<int:pk>/", TrainingJobDetailApi.as_view(), name="api-training-job"),
    path("suggestion-refreshes/latest/", SuggestionRefreshLatestApi.as_view(), name="api-suggestion-refresh"),
    path("queue/strategy/", QueueStrategyApi.as_view(), name="api-queue-strategy"),
]
