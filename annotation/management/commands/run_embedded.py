"""`make run`: TagStudio on one machine, no external services.

Migrates, creates an admin account (credentials printed and kept in var/admin_credentials.txt), loads
the demo catalog and taxonomy on an empty database, starts a local Celery worker (with beat) on the
embedded file-based queue, asks it for a first model when none exists, and serves the app with gunicorn.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from annotation.models import ModelVersion, Product, ProductTag, TrainingJob
from annotation.roles import ADMIN
from annotation.services.training import training_job_request
from annotation.services.users import user_create

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


class Command(BaseCommand):
    help = "Run TagStudio in embedded mode (SQLite by default, local worker, demo catalog) on 127.0.0.1:8000."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--no-demo", action="store_true", help="do not load the demo catalog")
        parser.add_argument("--no-train", action="store_true", help="do not train a first model")
        parser.add_argument("--setup-only", action="store_true", help="prepare everything, then exit")

    def handle(self, *args, **options) -> None:
        if not settings.TAGSTUDIO_EMBEDDED:
            raise CommandError(
                "CELERY_BROKER_URL is set: this is a production configuration. Run gunicorn and "
                "`celery worker` instead (see docker-compose.yml), or unset CELERY_BROKER_URL."
            )
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self._ensure_admin()
        if not options["no_demo"] and not Product.objects.exists():
            self.stdout.write("Loading the demo catalog (3,000 grocery products, 1,200 with tags)...")
            call_command("import_taxonomy", str(FIXTURES / "demo_taxonomy.csv"))
            call_command("import_products", str(FIXTURES / "demo_catalog.jsonl"), no_progress=True)
        if options["setup_only"]:
            return
        # `kill`, `timeout` and process managers stop a program with SIGTERM, whose default action ends
        # Python without running `finally`: the server and the worker would be left running. Make it the
        # same orderly stop as Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tagstudio",
                "worker",
                "-Q",
                "default,train",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "--hostname",
                "embedded@%h",
                # Beat inside the worker: the claim release, the job sweeper and the training reaper run
                # on schedule here too (CELERY_BEAT_SCHEDULE).
                "--beat",
                "--schedule",
                str(settings.VAR_DIR / "celerybeat-schedule"),
            ],
        )
        try:
            if not options["no_train"]:
                self._request_first_model()
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "tagstudio.wsgi",
                    "--bind",
                    options["bind"],
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--access-logfile",
                    "-",
                ],
            )
            self.stdout.write(
                self.style.SUCCESS(f"TagStudio is running on http://{options['bind']}/ (Ctrl-C stops it)")
            )
            self._wait(server, worker)
        finally:
            for process in (worker,):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        process.kill()

    def _ensure_admin(self) -> None:
        credentials = settings.VAR_DIR / "admin_credentials.txt"
        User = get_user_model()
        if not User.objects.filter(groups__name=ADMIN).exists():
            password = secrets.token_urlsafe(12)
            user, token = user_create(username="admin", password=password, role=ADMIN, validate=False)
            credentials.parent.mkdir(parents=True, exist_ok=True)
            credentials.write_text(f"username: admin\npassword: {password}\napi token: {token}\n")
            credentials.chmod(0o600)
        if credentials.exists():
            self.stdout.write(self.style.WARNING(f"Admin account (kept in {credentials}):"))
            self.stdout.write(credentials.read_text())

    def _request_first_model(self) -> None:
        if ModelVersion.objects.exists() or TrainingJob.objects.exists():
            return
        if not ProductTag.objects.exists():
            self.stdout.write(
                "No approved tags yet: review some products, then retrain from the models page."
            )
            return
        job = training_job_request(trigger="bootstrap")
        self.stdout.write(f"Training a first model in the background (training job {job.id}).")

    @staticmethod
    def _wait(server: subprocess.Popen, worker: subprocess.Popen) -> None:
        try:
            while server.poll() is None and worker.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=20)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
