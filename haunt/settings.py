"""Haunt settings: configured only from environment variables (see README, "Configuration")."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from haunt.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_optional_str,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("HAUNT_DATA_DIR", str(BASE_DIR / "data")))

HAUNT_ENV = env_choice("HAUNT_ENV", ("development", "production"), "development")
DEVELOPMENT = HAUNT_ENV == "development"
DEBUG = env_bool("HAUNT_DEBUG", DEVELOPMENT)


def _development_secret_key() -> str:
    """Generate a local secret once and keep it in the git-ignored data folder."""
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


_secret = env_optional_str("HAUNT_SECRET_KEY")
if _secret is None and not DEVELOPMENT:
    raise ImproperlyConfigured("HAUNT_SECRET_KEY is required when HAUNT_ENV is not development.")
SECRET_KEY = _secret or _development_secret_key()

# --- Node identity in the mesh -------------------------------------------------------------
_NODE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
HAUNT_NODE_ID = env_str("HAUNT_NODE_ID", "local" if DEVELOPMENT else None)
HAUNT_NODE_REGION = env_str("HAUNT_NODE_REGION", "local" if DEVELOPMENT else None)
for _name, _value in (("HAUNT_NODE_ID", HAUNT_NODE_ID), ("HAUNT_NODE_REGION", HAUNT_NODE_REGION)):
    if not _NODE_NAME.match(_value):
        raise ImproperlyConfigured(f"{_name}={_value!r} must be 1-32 lowercase letters, digits or '-'.")
HAUNT_VERSION = env_str("HAUNT_RELEASE", "0.1.0")

STORAGE_LIMIT_MB = env_int("STORAGE_LIMIT_MB", 30720, minimum=1)

# --- Moderation ------------------------------------------------------------------------------
HAUNT_USERNAME_MIN_LENGTH = env_int("HAUNT_USERNAME_MIN_LENGTH", 3, minimum=1, maximum=64)
HAUNT_USERNAME_MAX_LENGTH = env_int(
    "HAUNT_USERNAME_MAX_LENGTH", 24, minimum=HAUNT_USERNAME_MIN_LENGTH, maximum=64
)
HAUNT_BLOCKLIST_PATH = env_optional_str("HAUNT_BLOCKLIST_PATH")

# --- Markets ---------------------------------------------------------------------------------
HAUNT_USD_QUOTES = env_list("HAUNT_USD_QUOTES", ["usd", "usdt", "usdc"])
HAUNT_WS_MAX_SUBSCRIPTIONS = env_int("HAUNT_WS_MAX_SUBSCRIPTIONS", 100, minimum=1)
# How long public market-data GETs may be reused (haunt.shared_cache); 0 turns caching off.
HAUNT_PUBLIC_CACHE_SECONDS = env_int("HAUNT_PUBLIC_CACHE_SECONDS", 1, minimum=0, maximum=300)
HAUNT_FEED_FLUSH_MS = env_int("HAUNT_FEED_FLUSH_MS", 50, minimum=5, maximum=5000)
HAUNT_COINMARKETCAP_API_KEY = env_optional_str("HAUNT_COINMARKETCAP_API_KEY")
HAUNT_CRYPTOCOMPARE_API_KEY = env_optional_str("HAUNT_CRYPTOCOMPARE_API_KEY")
HAUNT_FEAR_GREED_URL = env_str("HAUNT_FEAR_GREED_URL", "https://api.alternative.me/fng/")

# --- Sync between nodes (apps/sync) ----------------------------------------------------------
HAUNT_SYNC_PRIMARY_NODE = env_str("HAUNT_SYNC_PRIMARY_NODE", "")  # PRIMARY_WINS fallback owner
HAUNT_SYNC_MAX_DRIFT_MS = env_int("HAUNT_SYNC_MAX_DRIFT_MS", 30_000, minimum=100)
HAUNT_SYNC_ENCRYPTION_KEY = env_optional_str("HAUNT_SYNC_ENCRYPTION_KEY")  # peer secrets at rest
HAUNT_SYNC_SIGNATURE_WINDOW_S = env_int("HAUNT_SYNC_SIGNATURE_WINDOW_S", 60, minimum=5)
HAUNT_SYNC_STALE_AFTER_S = env_float("HAUNT_SYNC_STALE_AFTER_S", 10.0, minimum=0.1)
HAUNT_SYNC_BATCH_ROWS = env_int("HAUNT_SYNC_BATCH_ROWS", 5000, minimum=1, maximum=5000)
HAUNT_SYNC_LONG_POLL_S = env_float("HAUNT_SYNC_LONG_POLL_S", 20.0, minimum=0)
HAUNT_SYNC_FEED_POLL_MS = env_int("HAUNT_SYNC_FEED_POLL_MS", 50, minimum=5)
HAUNT_SYNC_MAX_BODY_BYTES = env_int("HAUNT_SYNC_MAX_BODY_BYTES", 256 * 1024 * 1024, minimum=1024)
HAUNT_SYNC_SESSION_RETENTION_DAYS = env_int("HAUNT_SYNC_SESSION_RETENTION_DAYS", 30, minimum=1)
HAUNT_SYNC_METRIC_RETENTION_HOURS = env_int("HAUNT_SYNC_METRIC_RETENTION_HOURS", 48, minimum=1)

# --- HTTP ------------------------------------------------------------------------------------
ALLOWED_HOSTS = env_list("HAUNT_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEVELOPMENT else [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("HAUNT_ALLOWED_HOSTS is required when HAUNT_ENV is not development.")
CSRF_TRUSTED_ORIGINS = env_list("HAUNT_CSRF_TRUSTED_ORIGINS")
CORS_ALLOWED_ORIGINS = env_list("HAUNT_CORS_ALLOWED_ORIGINS")
CORS_ALLOW_CREDENTIALS = True

HTTPS = env_bool("HAUNT_HTTPS", not DEVELOPMENT)
if HTTPS:
    # TLS ends at the reverse proxy, which sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^api/health$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("HAUNT_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "haunt",
    "apps.markets",
    "apps.trading",
    "apps.sync",
    "apps.moderation",
    "apps.storage",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "haunt.urls"
WSGI_APPLICATION = "haunt.wsgi.application"
ASGI_APPLICATION = "haunt.asgi.application"

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
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
_database_url = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'haunt.sqlite3'}")
try:
    _database: dict[str, Any] = dict(dj_database_url.parse(_database_url))
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {exc}") from None
if _database["ENGINE"] == "django.db.backends.postgresql" and env_bool("HAUNT_DB_POOL", True):
    # Opening a connection per request caps a node near 150 requests/s; pool instead
    # (bench/rest_throughput.py measures both).
    _database["CONN_MAX_AGE"] = 0
    _database.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("HAUNT_DB_POOL_MIN", 2, minimum=0),
        "max_size": env_int("HAUNT_DB_POOL_MAX", 20, minimum=1),
        "timeout": env_float("HAUNT_DB_POOL_TIMEOUT", 10.0, minimum=0.1),
    }
elif _database["ENGINE"] == "django.db.backends.postgresql":
    pass  # HAUNT_DB_POOL=false: one connection per request (for comparison only)
elif _database["ENGINE"] == "django.db.backends.sqlite3":
    Path(_database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the web, worker and beat processes read while one of them writes.
    _database["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    raise ImproperlyConfigured("DATABASE_URL must be a postgres:// or sqlite:// URL.")
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer, Celery broker ----------------------------------------------
REDIS_URL = env_optional_str("REDIS_URL")
if REDIS_URL is None and not DEVELOPMENT:
    raise ImproperlyConfigured("REDIS_URL is required when HAUNT_ENV is not development.")
if REDIS_URL is not None and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured("REDIS_URL must start with redis://, rediss:// or unix://.")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "haunt.cache.PooledRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "haunt",
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # Explicit because redis-py defaults changed under us (channels_redis
                        # #422): the timeout must outlast the layer's 5 s BZPOPMIN, and the
                        # pool must not cap bursts at 100 connections.
                        "socket_timeout": env_float("HAUNT_CHANNELS_SOCKET_TIMEOUT", 30.0, minimum=6),
                        "socket_connect_timeout": 5,
                        "socket_keepalive": True,
                        "health_check_interval": 30,
                        "max_connections": env_int("HAUNT_CHANNELS_MAX_CONNECTIONS", 1000, minimum=10),
                    }
                ],
                "capacity": env_int("HAUNT_CHANNELS_CAPACITY", 500, minimum=10),
                "expiry": 60,
                "prefix": "haunt:ws:",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = env_optional_str("CELERY_BROKER_URL") or REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = env_bool("HAUNT_CELERY_EAGER", CELERY_BROKER_URL == "memory://")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Late-acked tasks are redelivered after this long if the worker vanished.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_DEFAULT_QUEUE = "default"
HAUNT_CELERY_QUEUES = ("default", "feeds", "sync", "maintenance")
CELERY_TASK_ROUTES = {
    "apps.markets.tasks.*": {"queue": "feeds"},
    "apps.sync.tasks.*": {"queue": "sync"},
    "apps.storage.tasks.*": {"queue": "maintenance"},
    "haunt.tasks.notification_purge_task": {"queue": "maintenance"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "seeding-batch": {
        "task": "apps.markets.tasks.seeding_batch_task",
        "schedule": 6 * 60 * 60,
        "kwargs": {"limit": 10},
        "options": {"expires": 60 * 60},
    },
    "exchange-latency-probe": {
        "task": "apps.markets.tasks.latency_probe_task",
        "schedule": 10.0,
        "options": {"expires": 10},
    },
    "exchange-dominance-snapshot": {
        "task": "apps.markets.tasks.dominance_snapshot_take_task",
        "schedule": 300.0,
        "options": {"expires": 300},
    },
    "usernames-recheck": {
        "task": "apps.moderation.tasks.usernames_recheck_task",
        "schedule": 24 * 60 * 60,
        "options": {"expires": 6 * 60 * 60},
    },
    "rest-sources-poll": {
        "task": "apps.markets.tasks.rest_sources_poll_task",
        "schedule": 30.0,
        "kwargs": {"exclude": ["coinmarketcap"]},
        "options": {"expires": 30},
    },
    # CoinMarketCap's free plan allows ~10k calls a month: every 30 s would use it up in days.
    "rest-source-poll-coinmarketcap": {
        "task": "apps.markets.tasks.rest_source_poll_task",
        "schedule": 300.0,
        "kwargs": {"slug": "coinmarketcap"},
        "options": {"expires": 300},
    },
    "trading-funding-settle": {
        # Minute 1, so a beat firing a hair early never settles the period still running.
        "task": "apps.trading.tasks.accounts.funding_settle_task",
        "schedule": crontab(minute="1", hour="0,8,16"),
        "options": {"expires": 7 * 60 * 60},
    },
    "trading-snapshots": {
        "task": "apps.trading.tasks.accounts.snapshots_take_task",
        "schedule": 900.0,
        "options": {"expires": 900},
    },
    # A safety net: the engine runner (manage.py run_engine) evaluates orders as prices arrive.
    "trading-resting-orders-sweep": {
        "task": "apps.trading.tasks.orders.resting_orders_sweep_task",
        "schedule": 10.0,
        "options": {"expires": 10},
    },
    "trading-cross-liquidation-prices": {
        "task": "apps.trading.tasks.positions.cross_liquidation_prices_refresh_task",
        "schedule": 30.0,
        "options": {"expires": 30},
    },
    "trading-bots-run-due": {
        "task": "apps.trading.tasks.bots.bots_run_due_task",
        "schedule": 30.0,
        "options": {"expires": 30},
    },
    "trading-options-settle-expired": {
        "task": "apps.trading.tasks.bots.options_settle_expired_task",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    "trading-predictions-resolve": {
        "task": "apps.trading.tasks.bots.predictions_resolve_task",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    "sync-metrics-collect": {
        "task": "apps.sync.tasks.sync_metrics_collect_task",
        "schedule": 10.0,
        "options": {"expires": 10},
    },
    "sync-reconcile": {
        "task": "apps.sync.tasks.sync_reconcile_task",
        "schedule": 300.0,
        "options": {"expires": 300},
    },
    "sync-cleanup": {
        "task": "apps.sync.tasks.sync_cleanup_task",
        "schedule": 3600.0,
        "options": {"expires": 3600},
    },
    "notifications-purge": {
        "task": "haunt.tasks.notification_purge_task",
        "schedule": 6 * 60 * 60,
        "options": {"expires": 6 * 60 * 60},
    },
}
CELERY_TIMEZONE = "UTC"
HAUNT_CELERY_PING_TIMEOUT = env_float("HAUNT_CELERY_PING_TIMEOUT", 1.0, minimum=0.1)

# --- Auth, API -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    # Token first so an anonymous request gets 401 with WWW-Authenticate, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "haunt.authentication.BearerOrTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "haunt.renderers.FastJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "haunt.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "haunt.throttling.AuthenticatedUserRateThrottle",
        "rest_framework.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("HAUNT_THROTTLE_ANON", "120/min"),
        "user": env_str("HAUNT_THROTTLE_USER", "1200/min"),
        "auth": env_str("HAUNT_THROTTLE_AUTH", "10/min"),
        # Low on purpose: a fast check endpoint would let the private blocklist be probed out.
        "username_check": env_str("HAUNT_THROTTLE_USERNAME_CHECK", "30/hour"),
    },
    "DEFAULT_SCHEMA_CLASS": "haunt.schema.HauntAutoSchema",
    "EXCEPTION_HANDLER": "haunt.errors.api_exception_handler",
    "NON_FIELD_ERRORS_KEY": "non_field_errors",
    "COERCE_DECIMAL_TO_STRING": True,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Haunt API",
    "DESCRIPTION": "Crypto market data and paper trading.",
    "VERSION": HAUNT_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Static and media files ------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"
HAUNT_S3_BUCKET = env_optional_str("HAUNT_S3_BUCKET")
if HAUNT_S3_BUCKET:
    _default_storage: dict[str, Any] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": HAUNT_S3_BUCKET,
            "endpoint_url": env_optional_str("HAUNT_S3_ENDPOINT_URL"),
            "default_acl": "private",
            "querystring_auth": True,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ---------------------------------------------------------------------------------
LOG_FORMAT = env_choice("HAUNT_LOG_FORMAT", ("text", "json"), "text")
LOG_LEVEL = env_choice("HAUNT_LOG_LEVEL", ("debug", "info", "warning", "error"), "info").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "static_fields": {"node": HAUNT_NODE_ID},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- First admin (see `manage.py ensure_admin`) ----------------------------------------------
HAUNT_ADMIN_USERNAME = env_optional_str("HAUNT_ADMIN_USERNAME")
HAUNT_ADMIN_EMAIL = env_optional_str("HAUNT_ADMIN_EMAIL")
HAUNT_ADMIN_PASSWORD = env_optional_str("HAUNT_ADMIN_PASSWORD")
