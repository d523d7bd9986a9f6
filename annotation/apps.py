from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_roles(sender, **kwargs) -> None:
    # Imported here: apps.py loads before the app registry is ready, and roles imports auth models.
    from annotation.roles import roles_ensure

    roles_ensure()


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = "TagStudio annotation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_ensure_roles, sender=self)
