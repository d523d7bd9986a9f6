# TagStudio image: one image for web, workers and beat (docker-compose.yml picks the command).
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DJANGO_SETTINGS_MODULE=tagstudio.settings
# torch==2.13.0 from PyPI is a CUDA build (several GB). For a CPU-only image pass the PyTorch CPU wheel
# index here: docker compose build --build-arg PIP_EXTRA_INDEX_URL=<cpu wheel index>
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL}

RUN apt-get update && apt-get install -y --no-install-recommends libpq5 curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 tagstudio
WORKDIR /app

COPY pyproject.toml README.md ./
COPY tagstudio ./tagstudio
COPY annotation ./annotation
COPY mlcore ./mlcore
COPY templates ./templates
COPY manage.py ./
RUN pip install --upgrade pip && pip install .

# collectstatic needs a key but no database; the real key comes from the environment at run time.
RUN SECRET_KEY=build-only-collectstatic python manage.py collectstatic --noinput \
    && mkdir -p /data/models /data/media && chown -R tagstudio /data /app
ENV STATIC_ROOT=/app/var/static MODEL_DIR=/data/models MEDIA_ROOT=/data/media \
    IMPORT_DIR=/data/media/imports EXPORT_DIR=/data/media/exports
USER tagstudio
EXPOSE 8000
CMD ["gunicorn", "tagstudio.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--access-logfile", "-"]
