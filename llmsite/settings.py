"""Settings for llmsite, read from the environment.

Every value has a default that works on a fresh checkout; README.md lists the variables.
A bad value raises ImproperlyConfigured naming the variable (see llmsite/env.py).
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from llmsite.env import env_bool, env_dir, env_int, env_list, env_str, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Data: database, secret key and models live in one folder -------------------------------------------
DATA_DIR = env_dir("LLMSITE_DATA_DIR", BASE_DIR / "var")
MODELS_DIR = env_dir("LLMSITE_MODELS_DIR", DATA_DIR / "models")

SECRET_KEY = secret_key(DATA_DIR)
DEBUG = env_bool("DEBUG", False)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS entries must start with http:// or https://; got {_origin!r}."
        )

INSTALLED_APPS = [
    "daphne",  # first, so runserver is the ASGI one
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "advisor",
    "chat",
    "accounts",  # after django.contrib.auth: its admin replaces the User admin
]

MIDDLEWARE = [
    "llmsite.middleware.ContentSecurityPolicyMiddleware",  # first, so static files and redirects get it too
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.middleware.FirstRunMiddleware",  # last: its redirects still get every header above
]

ROOT_URLCONF = "llmsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "llmsite.asgi.application"

# --- Database: SQLite in the data dir unless DATABASE_URL says otherwise --------------------------------
_SQLITE_PATH = DATA_DIR / "db.sqlite3"
try:
    DATABASES = {
        "default": dj_database_url.parse(env_str("DATABASE_URL", f"sqlite:///{_SQLITE_PATH}"), conn_max_age=0)
    }
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL Django understands: {exc}") from None

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers go on while one writer writes; IMMEDIATE transactions plus a busy timeout make
    # concurrent writers (many browsers, streaming replies) wait their turn instead of failing "locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer: in-process unless Redis is configured ------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"REDIS_URL must start with redis://, rediss:// or unix://; got {REDIS_URL!r}.")
    # Workers relay every token through Redis: a channel holds up to 1000 messages (the default, 100, is a
    # second of tokens from a few workers to one web process).
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                    "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000}}
    }
else:
    # Each reply's tokens go through a group; the default capacity (100 messages) is too small for a burst
    # of tokens to a slow socket (the consumer refills gaps from the database, but need not have to).
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}

# With Redis, LLM workers (`manage.py llmworker`) announce themselves this often; one not heard from for
# LLMSITE_WORKER_TIMEOUT_MS is gone, and the replies it was writing end with an error (what was written is kept).
LLMSITE_WORKER_ANNOUNCE_MS = env_int("LLMSITE_WORKER_ANNOUNCE_MS", 2000, minimum=100, maximum=60_000)
LLMSITE_WORKER_TIMEOUT_MS = env_int("LLMSITE_WORKER_TIMEOUT_MS", 10_000, minimum=300, maximum=600_000)
if LLMSITE_WORKER_TIMEOUT_MS < 2 * LLMSITE_WORKER_ANNOUNCE_MS:
    raise ImproperlyConfigured(
        "LLMSITE_WORKER_TIMEOUT_MS must be at least twice LLMSITE_WORKER_ANNOUNCE_MS, or live workers would "
        f"be taken for gone; got {LLMSITE_WORKER_TIMEOUT_MS} and {LLMSITE_WORKER_ANNOUNCE_MS}."
    )

# --- Auth --------------------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Every sign-in (ours, the admin's) goes through the throttle in accounts/throttle.py.
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
LLMSITE_SIGNIN_ATTEMPTS = env_int("LLMSITE_SIGNIN_ATTEMPTS", 5, minimum=1, maximum=1000)
LLMSITE_SIGNIN_WINDOW_S = env_int("LLMSITE_SIGNIN_WINDOW_S", 900, minimum=1, maximum=86_400)
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
SESSION_COOKIE_HTTPONLY = True  # Django's default, stated: no script reads the session cookie

# --- Languages: English and Spanish ----------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("es", _("Spanish"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_TZ = True

# --- Static files: whitenoise serves them, compressed and with hashed names -------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security headers ---------------------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# No inline script or style anywhere (the admin's included); ws:/wss: for the chat's WebSocket.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)
# Behind a TLS-terminating reverse proxy, set LLMSITE_BEHIND_HTTPS_PROXY=1 (README: "On your network").
if env_bool("LLMSITE_BEHIND_HTTPS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- The LLM worker ----------------------------------------------------------------------------------------
# File name (in MODELS_DIR) of the model the chat loads at start; empty means the default SmolLM2 file.
LLMSITE_MODEL = env_str("LLMSITE_MODEL")
LLMSITE_N_CTX = env_int("LLMSITE_N_CTX", 4096, minimum=256, maximum=1_048_576)
_n_gpu_layers = env_str("LLMSITE_N_GPU_LAYERS", "auto").strip().lower()
if _n_gpu_layers != "auto":
    try:
        _n_gpu_layers = int(_n_gpu_layers)
    except ValueError:
        raise ImproperlyConfigured(
            f"LLMSITE_N_GPU_LAYERS must be 'auto', -1 (all) or a number of layers; got {_n_gpu_layers!r}."
        ) from None
    if _n_gpu_layers < -1:
        raise ImproperlyConfigured(f"LLMSITE_N_GPU_LAYERS must be -1 or more; got {_n_gpu_layers}.")
LLMSITE_N_GPU_LAYERS = _n_gpu_layers

# --- Limits on the chat socket (README: "Limits"); counted per web process, in memory ----------------------
# Replies one worker writes at once (continuous batching, chat/worker/engine.py; each has its own n_ctx of
# KV cache, so the KV memory is N times n_ctx's). 0: the one-at-a-time path without the engine.
LLMSITE_PARALLEL = env_int("LLMSITE_PARALLEL", 4, minimum=0, maximum=64)
LLMSITE_MAX_TOKENS = env_int("LLMSITE_MAX_TOKENS", 4096, minimum=1, maximum=1_048_576)
LLMSITE_MAX_MESSAGE_CHARS = env_int("LLMSITE_MAX_MESSAGE_CHARS", 100_000, minimum=1, maximum=1_000_000)
# daphne itself closes a WebSocket message over 1 MiB (close code 1009); this is the app's limit below that.
LLMSITE_MAX_FRAME_CHARS = env_int("LLMSITE_MAX_FRAME_CHARS", 256_000, minimum=1_000, maximum=1_000_000)
LLMSITE_RATE_PER_MINUTE = env_int("LLMSITE_RATE_PER_MINUTE", 20, minimum=1, maximum=100_000)
LLMSITE_MAX_QUEUED_PER_USER = env_int("LLMSITE_MAX_QUEUED_PER_USER", 3, minimum=1, maximum=10_000)
LLMSITE_MAX_CONNECTIONS_PER_USER = env_int("LLMSITE_MAX_CONNECTIONS_PER_USER", 8, minimum=1, maximum=10_000)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL; got {LOG_LEVEL!r}.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
