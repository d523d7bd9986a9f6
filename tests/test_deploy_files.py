"""docker-compose.yml cannot be run here (no Docker daemon); check what users rely on in it."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_has_every_service_with_healthchecks():
    services = _compose()["services"]
    assert {"postgres", "redis", "web", "worker", "trainer", "beat", "migrate"} <= set(services)
    for name in ("postgres", "redis", "web", "worker", "trainer"):
        assert "healthcheck" in services[name], name


def test_compose_queues_and_shared_model_volume():
    services = _compose()["services"]
    assert services["trainer"]["command"][services["trainer"]["command"].index("-Q") + 1] == "train"
    assert services["trainer"]["command"][services["trainer"]["command"].index("--concurrency") + 1] == "1"
    assert services["worker"]["command"][services["worker"]["command"].index("-Q") + 1] == "default"
    for name in ("web", "worker", "trainer"):
        assert "models:/data/models" in services[name]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def test_compose_takes_secret_key_from_environment():
    env = _compose()["services"]["web"]["environment"]
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert env["CELERY_BROKER_URL"].startswith("redis://")
    assert env["DATABASE_URL"].startswith("postgres://")


def test_torch_is_pinned_to_the_local_cpu_build():
    text = (REPO / "pyproject.toml").read_text()
    assert '"torch==2.13.0"' in text
