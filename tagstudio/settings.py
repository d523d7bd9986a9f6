"""TagStudio settings: everything that differs between machines comes from environment variables.

Embedded mode (the default of ``make run``): SQLite file under ``var/``, Celery with kombu's filesystem
transport under ``var/broker`` and a local worker started by the run command. It is chosen by leaving
``CELERY_BROKER_URL`` unset — never a silent fallback when a configured broker is down.
Production: ``DATABASE_URL=postgres://…``, ``CELERY_BROKER_URL=redis://…`` (or ``amqp://…``),
``SECRET_KEY``, ``ALLOWED_HOSTS``; see docker-compose.yml.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TAGSTUDIO_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def embedded_secret_key(var_dir: Path) -> str:
    """The key `make run` keeps in var/secret_key, created (owner-only) when missing.

    So that the README's `manage.py ...` commands work in embedded mode without exporting SECRET_KEY by
    hand: they must sign with the same key as the running server.
    """
    key_file = var_dir / "secret_key"
    if key_file.is_file() and key_file.read_text().strip():
        return key_file.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY and os.environ.get("CELERY_BROKER_URL", "") == "":
    # Embedded mode (no broker configured): a single machine, its key lives under var/ like its database.
    SECRET_KEY = embedded_secret_key(VAR_DIR)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off. Set SECRET_KEY in the environment "
            "(make run generates one in var/secret_key)."
        )
    SECRET_KEY = "insecure-debug-only-key-never-used-with-debug-off"  # noqa: S105 — DEBUG only

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if not DEBUG else ["*"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "axes",
    "annotation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a refused login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tagstudio.urls"
WSGI_APPLICATION = "tagstudio.wsgi.application"
ASGI_APPLICATION = "tagstudio.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "annotation.context_processors.role",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'tagstudio.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite is the embedded single-machine mode: WAL lets the web process read while the worker writes.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Brute-force protection (django-axes) -------------------------------------------------------------
# Failed logins (the login page, the admin login) are counted in the database, shared by every process.
# After AXES_FAILURE_LIMIT failures a user name, and separately a client address, is refused (429) until
# AXES_COOLOFF_MINUTES pass without a new failure, or an admin unlocks it (`manage.py axes_reset`,
# `axes_reset_username NAME`, `axes_reset_ip ADDRESS`; a superuser can delete the attempt in the admin).
AUTHENTICATION_BACKENDS = [
    "tagstudio.auth_backends.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10)
# 0 = no cool-off: a locked user or address stays locked until an admin resets it.
_axes_cooloff_minutes = env_float("AXES_COOLOFF_MINUTES", 15)
AXES_COOLOFF_TIME = timedelta(minutes=_axes_cooloff_minutes) if _axes_cooloff_minutes > 0 else None


def _lockout_parameters(value: str) -> list[str | list[str]]:
    """Parse e.g. ``username,ip_address`` (each counted alone) or ``username+ip_address`` (only the pair)."""
    known = {"username", "ip_address", "user_agent"}
    parameters: list[str | list[str]] = []
    for item in (part.strip() for part in value.split(",")):
        names = [name.strip() for name in item.split("+") if name.strip()]
        if not names or set(names) - known:
            raise ImproperlyConfigured(
                f"AXES_LOCKOUT_PARAMETERS: {item!r} is not one of {sorted(known)} (joined by '+')"
            )
        parameters.append(names[0] if len(names) == 1 else names)
    return parameters


AXES_LOCKOUT_PARAMETERS = _lockout_parameters(
    os.environ.get("AXES_LOCKOUT_PARAMETERS") or "username,ip_address"
)
# A success must not clear the failures: one attacker's own account would reset the count of its address.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The client address: REMOTE_ADDR, or the address TRUSTED_PROXY_COUNT proxies in front of us saw.
AXES_CLIENT_IP_CALLABLE = "tagstudio.auth_backends.client_address"
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "review"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

# Request limits: uploads bigger than this go to a temporary file; bodies over the cap get 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
TAGSTUDIO_MAX_UPLOAD_BYTES = env_int("TAGSTUDIO_MAX_UPLOAD_BYTES", 2 * 1024 * 1024 * 1024)

# Security: production values are on unless DEBUG; each can be overridden for a TLS-terminating proxy.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- REST API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        # TokenAuthentication that answers 429 to an address after repeated invalid tokens.
        "annotation.api.limits.FailureLimitedTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "annotation.api.pagination.KeysetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "annotation.api.errors.json_exception_handler",
    # Per API token (per user for session logins) and per address for anonymous calls; rates read per request.
    "DEFAULT_THROTTLE_CLASSES": [
        "annotation.api.limits.TokenRateThrottle",
        "annotation.api.limits.AnonymousRateThrottle",
    ],
    # Bodies above DATA_UPLOAD_MAX_MEMORY_SIZE (uploads: TAGSTUDIO_MAX_UPLOAD_BYTES) get 413 before reading.
    "DEFAULT_PARSER_CLASSES": [
        "annotation.api.limits.LimitedJSONParser",
        "annotation.api.limits.LimitedFormParser",
        "annotation.api.limits.LimitedMultiPartParser",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": os.environ.get("API_RATE_LIMIT_USER", "6000/min"),
        "anon": os.environ.get("API_RATE_LIMIT_ANON", "60/min"),
    },
    # Client addresses for the anonymous and failed-token limits: X-Forwarded-For is trusted only as far
    # as TRUSTED_PROXY_COUNT proxies (0: REMOTE_ADDR; a client-sent header must not pick its own bucket).
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}
# An address whose API tokens failed this many times within the window gets 429 (with Retry-After)
# for every token it sends until the window has passed (annotation.api.limits).
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 20)
API_TOKEN_FAILURE_WINDOW_SECONDS = env_int("API_TOKEN_FAILURE_WINDOW_SECONDS", 300)
SPECTACULAR_SETTINGS = {
    "TITLE": "TagStudio API",
    "DESCRIPTION": "Product tags: catalog import, review queue, model registry and export of approved tags.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets that share a field name with another: named here so the generated enums keep their names.
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "annotation.models.JobStatus",
        "CandidateStatusEnum": "annotation.selectors.bulk.CANDIDATE_STATUSES",
    },
    # Every operation documents the API's error responses (annotation.api.schema).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "annotation.api.schema.error_responses_hook",
    ],
}
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 500)
# The export's high-water mark is moved back by this margin (clock skew between app hosts and the DB).
EXPORT_HIGH_WATER_MARGIN_SECONDS = env_int("EXPORT_HIGH_WATER_MARGIN_SECONDS", 5)

# Rate-limit counters and cached figures must be shared by every web process (gunicorn runs several):
# Redis when CACHE_URL is set (docker-compose), otherwise a table in the database, created by `migrate`
# (migration annotation 0003; `createcachetable` makes it too), in embedded mode as well.
CACHE_TABLE = "tagstudio_cache"
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["CACHE_URL"]}
        if os.environ.get("CACHE_URL")
        else {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CACHE_TABLE,
            # Django's default (300) culls live rate-limit counters as soon as 300 clients and cached
            # figures are held; expired entries go first, so this bounds only a flood of live keys.
            "OPTIONS": {"MAX_ENTRIES": 50_000},
        }
    )
}

# --- Background jobs (Celery) -----------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
TAGSTUDIO_EMBEDDED = CELERY_BROKER_URL == ""
if TAGSTUDIO_EMBEDDED:
    # Embedded mode: a broker-less local worker. kombu's filesystem transport keeps the queue in
    # var/broker; the local worker started by `make run` consumes it. Same tasks, same code path.
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    # The host part means nothing to this transport; without one kombu warns on every connection.
    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast (remote control) messages; kombu's default is ./control in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = None  # job state lives in the database (ImportJob, TrainingJob, ...)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # tasks are idempotent (conditional state updates); redeliver on worker loss
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A web request never waits long on a broker that is down: a publish tries 3 times within about a second,
# each connection attempt gives up after CELERY_BROKER_CONNECTION_TIMEOUT; the job then waits in its table
# for the sweeper below (annotation.services.jobs_recovery).
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 2.0)
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 0.5,
}
if not TAGSTUDIO_EMBEDDED:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"annotation.tasks.model_train": {"queue": "train"}}
# The sweeper sends again the jobs whose message the broker lost (queued that long, their queue empty);
# the reaper fails a training whose heartbeat is older than TRAINING_STALE_AFTER_SECONDS. Beat runs them
# (docker-compose's beat service; the embedded worker runs beat itself).
JOBS_SWEEP_SECONDS = env_float("JOBS_SWEEP_SECONDS", 60.0)
JOBS_RESEND_AFTER_SECONDS = env_float("JOBS_RESEND_AFTER_SECONDS", 120.0)
# The same sweeper resolves a running import, export or bulk job whose worker is gone (dead pid on this
# host, or no heartbeat for JOBS_STALE_AFTER_SECONDS): imports and exports run again, up to
# JOBS_MAX_ATTEMPTS attempts in all, then fail; bulk actions fail at once (annotation.services.jobs_recovery).
JOBS_HEARTBEAT_SECONDS = env_float("JOBS_HEARTBEAT_SECONDS", 10.0)
JOBS_STALE_AFTER_SECONDS = env_float("JOBS_STALE_AFTER_SECONDS", 120.0)
JOBS_MAX_ATTEMPTS = env_int("JOBS_MAX_ATTEMPTS", 3)
TRAINING_REAP_SECONDS = env_float("TRAINING_REAP_SECONDS", 60.0)
# Uploaded import files are removed this long after their job ended (annotation.services.imports.retention).
IMPORT_FILE_RETENTION_HOURS = env_float("IMPORT_FILE_RETENTION_HOURS", 168.0)
IMPORT_FILE_SWEEP_SECONDS = env_float("IMPORT_FILE_SWEEP_SECONDS", 3600.0)
CELERY_BEAT_SCHEDULE = {
    "release-expired-claims": {"task": "annotation.tasks.claims_release_expired", "schedule": 300.0},
    "resend-lost-jobs": {"task": "annotation.tasks.jobs_resend_lost", "schedule": JOBS_SWEEP_SECONDS},
    "reap-stale-training": {"task": "annotation.tasks.training_jobs_reap", "schedule": TRAINING_REAP_SECONDS},
    "remove-expired-import-files": {
        "task": "annotation.tasks.import_files_remove_expired",
        "schedule": IMPORT_FILE_SWEEP_SECONDS,
    },
}

# --- TagStudio ---------------------------------------------------------------------------------------
MODEL_DIR = Path(os.environ.get("MODEL_DIR", VAR_DIR / "models"))
TAGSTUDIO_BASE_MODEL = os.environ.get("TAGSTUDIO_BASE_MODEL", "")  # "" = offline MiniLM from PyPI
TAGSTUDIO_TAGGER = os.environ.get("TAGSTUDIO_TAGGER", "default")
EMBEDDING_CACHE_DIR = Path(os.environ.get("EMBEDDING_CACHE_DIR", MODEL_DIR / "embeddings"))
# Where the tagger runs ("cpu", "cuda", "cuda:1"; "" = CUDA when available) and its CPU threads (0 = the
# idle cores); handed to mlcore as RuntimeSettings with the two settings above.
TAGSTUDIO_DEVICE = os.environ.get("TAGSTUDIO_DEVICE", "")
TAGSTUDIO_NUM_THREADS = env_int("TAGSTUDIO_NUM_THREADS", 0)
IMPORT_DIR = Path(os.environ.get("IMPORT_DIR", VAR_DIR / "imports"))
EXPORT_DIR = Path(os.environ.get("EXPORT_DIR", VAR_DIR / "exports"))
REVIEW_CLAIM_TTL_SECONDS = env_int("REVIEW_CLAIM_TTL_SECONDS", 600)
REVIEW_ACCEPT_THRESHOLD = env_float("REVIEW_ACCEPT_THRESHOLD", 0.5)
# The review card starts with the model's selected tags checked (one key for a right card); 0 = explicit accepts.
REVIEW_PRECHECK_SELECTED = env_bool("REVIEW_PRECHECK_SELECTED", True)
# ... those of them the model rates at least this likely (or the best of them when none is): a selected
# tag below it starts open (see annotation.selectors.precheck for why, and why 0.4).
REVIEW_PRECHECK_MIN_SCORE = env_float("REVIEW_PRECHECK_MIN_SCORE", 0.4)
# How long a skipped product stays out of that operator's queue (others still get it).
REVIEW_SKIP_HIDE_SECONDS = env_int("REVIEW_SKIP_HIDE_SECONDS", 3600)
# Deployment default for "accepting a child tag implies its ancestors"; the taxonomy page overrides it.
TAGSTUDIO_HIERARCHY_CLOSURE = env_bool("TAGSTUDIO_HIERARCHY_CLOSURE", True)
DASHBOARD_CACHE_SECONDS = env_int("DASHBOARD_CACHE_SECONDS", 60)
RETRAIN_AFTER_REVIEWS = env_int("RETRAIN_AFTER_REVIEWS", 200)
# A bulk decision on more products than this runs as a background job with progress (tag candidate grid).
BULK_REVIEW_INLINE_MAX = env_int("BULK_REVIEW_INLINE_MAX", 5000)
MODEL_PROMOTION = os.environ.get("MODEL_PROMOTION", "auto")  # auto | manual
if MODEL_PROMOTION not in {"auto", "manual"}:
    raise ImproperlyConfigured(f"MODEL_PROMOTION must be 'auto' or 'manual', got {MODEL_PROMOTION!r}")
SUGGESTION_BATCH_SIZE = env_int("SUGGESTION_BATCH_SIZE", 2000)
IMPORT_BATCH_SIZE = env_int("IMPORT_BATCH_SIZE", 10000)
IMPORT_MAX_ERRORS_KEPT = env_int("IMPORT_MAX_ERRORS_KEPT", 1000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"client_error_one_line": {"()": "tagstudio.log_filters.ClientErrorWithoutTraceback"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["client_error_one_line"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
