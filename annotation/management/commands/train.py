"""`python manage.py train`: train a new model version from every approved tag.

By default the training runs here, in this process, with a progress bar (the same service the `train`
queue runs, so the job, its progress and its promotion look exactly like a background one). `--async`
queues it for the training workers instead and prints the job id.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.models import JobStatus, TrainingJob, TrainingTrigger
from annotation.services.training import training_job_request
from annotation.services.training.run import model_version_train


class Command(BaseCommand):
    help = "Train a new model version from all approved tags (in this process, or --async on the workers)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--async", dest="run_async", action="store_true", help="queue it for the workers")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")

    def handle(self, *args, **options) -> None:
        if options["run_async"]:
            job = training_job_request(trigger=TrainingTrigger.COMMAND)
            self.stdout.write(f"Training job {job.id} is {job.status}.")
            return
        latest = TrainingJob.objects.order_by("-id").values_list("id", flat=True).first()
        job = training_job_request(trigger=TrainingTrigger.COMMAND, enqueue=False)
        if job.id == latest:  # not ours: the job that was already queued or running
            raise CommandError(
                f"Training job {job.id} ({job.trigger}) is already {job.status}; wait for it or follow it on "
                f"the models page (GET /api/v1/training-jobs/{job.id}/)."
            )
        self.stdout.write(f"Training job {job.id}: training here.")
        bar = None if options["no_progress"] else tqdm(total=None, unit="step", dynamic_ncols=True)

        def on_progress(snapshot: dict) -> None:
            if bar is None:
                return
            bar.set_description(snapshot.get("phase") or "")
            total = snapshot.get("total")
            if total != bar.total:
                bar.reset(total=total)
            bar.n = snapshot.get("step") or 0
            bar.refresh()

        try:
            finished = model_version_train(job.id, on_progress=on_progress)
        finally:
            if bar is not None:
                bar.close()
        if finished is None:
            raise CommandError(f"Training job {job.id} was taken by another worker.")
        if finished.status != JobStatus.SUCCEEDED:
            raise CommandError(f"Training job {job.id} failed: {finished.error}")
        version = finished.model_version
        decision = (version.metrics.get("promotion") or {}).get("decision", "")
        self.stdout.write(
            self.style.SUCCESS(
                f"{version.version}: micro-F1 {version.metrics.get('micro_f1', float('nan')):.4f} on "
                f"{version.valid_size} held-out products, {version.device}, {version.duration_s:.1f}s; {decision}"
            )
        )
