"""Settings for llmsite, read from the environment.

Every value has a default that works on a fresh checkout; README.md lists the variables.
A bad value raises ImproperlyConfigured naming the variable (see llmsite/env.py).
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from chat.worker.types import LoadSettingsError, parse_parallel
from llmsite.datadir import create_private_file
from llmsite.env import env_bool, env_dir, env_int, env_list, env_str, secret_key
from llmsite.proxy import parse_trusted_proxies

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Data: database, secret key and models live in one folder -------------------------------------------
DATA_DIR = env_dir("LLMSITE_DATA_DIR", BASE_DIR / "var", mode=0o700)  # only this account reads it (issue 11)
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
    "chat.openai_api",  # the OpenAI-compatible API (/v1/) and personal API keys
    "accounts",  # after django.contrib.auth: its admin replaces the User admin
    "downloads",  # getting GGUF files into the models folder (Hugging Face or a plain HTTPS URL)
]

MIDDLEWARE = [
    "llmsite.middleware.LowerPagePriorityMiddleware",  # a page's work yields to a streaming reply (make run only)
    "llmsite.middleware.ContentSecurityPolicyMiddleware",  # first, so static files and redirects get it too
    "django.middleware.security.SecurityMiddleware",
    # At most LLMSITE_PAGE_THREADS requests past this point at once; its 503 still gets the headers above.
    "llmsite.middleware.PageSlotsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "llmsite.signedin.NoteSignedInMiddleware",  # a signed-in person's WebSocket handshakes go uncounted
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
# With Redis, every message between the site and its workers (people's histories and system prompts, the
# replies, the sockets' events) is encrypted and authenticated with LLMSITE_REDIS_KEY, which the site and
# every `manage.py llmworker` share: whoever reaches Redis without it can read and forge nothing (README:
# "Past one machine"). Starting without a key takes LLMSITE_REDIS_INSECURE=1. Several keys, separated by
# commas, let a key be changed without stopping everything: the first seals, every one of them opens.
REDIS_URL = env_str("REDIS_URL")
REDIS_KEY_MIN_CHARS = 32
LLMSITE_REDIS_INSECURE = env_bool("LLMSITE_REDIS_INSECURE", False)
LLMSITE_REDIS_KEYS = [key.strip() for key in env_str("LLMSITE_REDIS_KEY").split(",") if key.strip()]
if REDIS_URL:
    if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
        # Not the value itself: it may hold a password.
        raise ImproperlyConfigured("REDIS_URL must start with redis://, rediss:// (TLS) or unix://; got a value "
                                   f"starting with {REDIS_URL.split(':', 1)[0][:10]!r}.")
    if not LLMSITE_REDIS_KEYS and not LLMSITE_REDIS_INSECURE:
        raise ImproperlyConfigured(
            "REDIS_URL is set but LLMSITE_REDIS_KEY is not: without it, anyone who reaches Redis can read every "
            "conversation and write replies as a worker. Give the site and every llmworker the same key, e.g. "
            "LLMSITE_REDIS_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))'), or set "
            "LLMSITE_REDIS_INSECURE=1 to run without one."
        )
    for _key in LLMSITE_REDIS_KEYS:
        if len(_key) < REDIS_KEY_MIN_CHARS:
            raise ImproperlyConfigured(
                f"LLMSITE_REDIS_KEY must be at least {REDIS_KEY_MIN_CHARS} characters (a key of {len(_key)} can be "
                "guessed from what Redis holds); python3 -c 'import secrets; print(secrets.token_urlsafe(32))' "
                "makes one."
            )
    # Workers relay every token through Redis: a channel holds up to 1000 messages (the default, 100, is a
    # second of tokens from a few workers to one web process).
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "chat.worker.redis_layer.SealedRedisChannelLayer",
                    "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000,
                               "symmetric_encryption_keys": LLMSITE_REDIS_KEYS or None}}
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

# --- Downloads into the models folder (downloads/, README: "Get a real model") ------------------------------
# huggingface_hub's own conventions: HF_ENDPOINT for a mirror, HF_TOKEN for gated repositories (never shown).
HF_ENDPOINT = env_str("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
if not HF_ENDPOINT.startswith(("https://", "http://")):
    raise ImproperlyConfigured(f"HF_ENDPOINT must start with https:// (or http://); got {HF_ENDPOINT[:40]!r}.")
HF_TOKEN = env_str("HF_TOKEN") or None
# Room kept free on the models folder's disk beyond the file itself, in MiB.
LLMSITE_DOWNLOAD_MARGIN_MB = env_int("LLMSITE_DOWNLOAD_MARGIN_MB", 1024, minimum=0, maximum=10_000_000)

# --- Limits on the chat socket (README: "Limits"); counted per web process, in memory ----------------------
# Replies one worker writes at once (continuous batching, chat/worker/engine.py; each has its own n_ctx of
# KV cache, so the KV memory is N times n_ctx's). 0: the one-at-a-time path without the engine. "auto": the
# slots that fit in memory per the advisor's estimate (GPU memory, else RAM), 1 to 16, chosen at each load.
try:
    LLMSITE_PARALLEL = parse_parallel(env_str("LLMSITE_PARALLEL").strip() or "4")
except LoadSettingsError as exc:
    raise ImproperlyConfigured(f"LLMSITE_PARALLEL: {exc}.") from None
LLMSITE_MAX_TOKENS = env_int("LLMSITE_MAX_TOKENS", 4096, minimum=1, maximum=1_048_576)
LLMSITE_MAX_MESSAGE_CHARS = env_int("LLMSITE_MAX_MESSAGE_CHARS", 100_000, minimum=1, maximum=1_000_000)
# daphne itself closes a WebSocket message over 1 MiB (close code 1009); this is the app's limit below that.
LLMSITE_MAX_FRAME_CHARS = env_int("LLMSITE_MAX_FRAME_CHARS", 256_000, minimum=1_000, maximum=1_000_000)
LLMSITE_RATE_PER_MINUTE = env_int("LLMSITE_RATE_PER_MINUTE", 20, minimum=1, maximum=100_000)
LLMSITE_MAX_QUEUED_PER_USER = env_int("LLMSITE_MAX_QUEUED_PER_USER", 3, minimum=1, maximum=10_000)
LLMSITE_MAX_CONNECTIONS_PER_USER = env_int("LLMSITE_MAX_CONNECTIONS_PER_USER", 8, minimum=1, maximum=10_000)
# Every frame a chat socket reads takes one of its LLMSITE_FRAME_BURST tokens, and LLMSITE_FRAMES_PER_SECOND
# come back each second; a socket that runs out is closed (code 4408) so floods of cheap frames cannot stall
# the site, and its person's new sockets are refused for LLMSITE_FLOOD_COOLDOWN_S (README: "Limits").
LLMSITE_FRAMES_PER_SECOND = env_int("LLMSITE_FRAMES_PER_SECOND", 5, minimum=1, maximum=100_000)
LLMSITE_FRAME_BURST = env_int("LLMSITE_FRAME_BURST", 30, minimum=1, maximum=1_000_000)
# Origins (https://app.example.lan) whose pages may call /v1/ from a browser; none: CORS stays off.
LLMSITE_API_CORS_ORIGINS = env_list("LLMSITE_API_CORS_ORIGINS", [])
for _origin in LLMSITE_API_CORS_ORIGINS:
    if not _origin.startswith(("http://", "https://")) or _origin.rstrip("/") != _origin:
        raise ImproperlyConfigured(
            f"LLMSITE_API_CORS_ORIGINS entries must be origins like https://host:port; got {_origin!r}.")
LLMSITE_FLOOD_COOLDOWN_S = env_int("LLMSITE_FLOOD_COOLDOWN_S", 10, minimum=0, maximum=3600)

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

# --- Hostile LAN (issue 11): trusted proxies, sign-up throttle, connection limits, private data files -------
# Forwarded headers (X-Forwarded-For, X-Forwarded-Proto) are believed only from these peers (llmsite/proxy.py).
LLMSITE_TRUSTED_PROXIES = parse_trusted_proxies("LLMSITE_TRUSTED_PROXIES", env_list("LLMSITE_TRUSTED_PROXIES", []))
# Open sign-up: accounts one address may ask for in an hour, and inactive accounts waiting at most.
LLMSITE_SIGNUP_PER_ADDRESS = env_int("LLMSITE_SIGNUP_PER_ADDRESS", 3, minimum=1, maximum=10_000)
LLMSITE_SIGNUP_MAX_PENDING = env_int("LLMSITE_SIGNUP_MAX_PENDING", 20, minimum=1, maximum=100_000)
# The server `make run` starts (llmsite/serve.py): open connections per client address (trusted proxies
# exempt), seconds a new connection has to send its first request's headers, and seconds an idle HTTP
# connection is kept (llmsite/connections.py).
LLMSITE_MAX_CONNECTIONS_PER_ADDRESS = env_int("LLMSITE_MAX_CONNECTIONS_PER_ADDRESS", 256, minimum=1,
                                              maximum=1_000_000)
# `make run` lowers the CPU priority of the threads that draw pages by this many `nice` steps, so a reply
# beside a burst of page requests keeps its speed (chat/worker/priority.py); 0 turns it off. 15, not 5: a
# prompt evaluated on every core kept 0.33x of its speed at 5 and 0.88x at 15 (README, "Performance").
LLMSITE_PAGE_NICE = env_int("LLMSITE_PAGE_NICE", 15, minimum=0, maximum=19)
# At most this many requests run the site's code at once, the others wait up to LLMSITE_PAGE_WAIT_S seconds
# (then 503): one thread per request taking turns with the interpreter lock cost pages 75% more CPU time
# (llmsite/middleware.py PageSlotsMiddleware). 0: no limit.
LLMSITE_PAGE_THREADS = env_int("LLMSITE_PAGE_THREADS", 2, minimum=0, maximum=1000)
LLMSITE_PAGE_WAIT_S = env_int("LLMSITE_PAGE_WAIT_S", 30, minimum=1, maximum=3600)
LLMSITE_HEADER_TIMEOUT_S = env_int("LLMSITE_HEADER_TIMEOUT_S", 20, minimum=1, maximum=3600)
LLMSITE_IDLE_TIMEOUT_S = env_int("LLMSITE_IDLE_TIMEOUT_S", 30, minimum=1, maximum=3600)
# A request body has LLMSITE_HEADER_TIMEOUT_S seconds, plus one for every this many bytes received.
LLMSITE_BODY_MIN_BYTES_PER_S = env_int("LLMSITE_BODY_MIN_BYTES_PER_S", 500, minimum=1, maximum=1_000_000_000)
# WebSocket handshakes per client address, this many a second and this many at once; handshakes with a
# session seen signed in are not counted (llmsite/connections.py, llmsite/signedin.py).
LLMSITE_HANDSHAKES_PER_S = env_int("LLMSITE_HANDSHAKES_PER_S", 10, minimum=1, maximum=1_000_000)
LLMSITE_HANDSHAKE_BURST = env_int("LLMSITE_HANDSHAKE_BURST", 60, minimum=1, maximum=1_000_000)
# The largest request body it accepts, in MiB: daphne holds a whole body (on disk, then in memory) before any
# view or sign-in check runs, so a bigger one is answered 413 as soon as its length shows (llmsite/connections.py).
LLMSITE_MAX_REQUEST_BODY_MB = env_int("LLMSITE_MAX_REQUEST_BODY_MB", 64, minimum=1, maximum=1_000_000)
# Anonymous GET /healthz is served from a copy at most this old (llmsite/health.py); 0: always a full answer.
LLMSITE_HEALTHZ_MAX_AGE_MS = env_int("LLMSITE_HEALTHZ_MAX_AGE_MS", 250, minimum=0, maximum=60_000)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite gives its -wal, -shm and journal files the database file's mode: create that file 0600 first.
    create_private_file(DATABASES["default"]["NAME"])
# --- Caches, and the advisor's per-address limit (README: "Performance") ---------------------------------
# Both caches live in the memory of the one web process `make run` starts (LocMemCache): nothing to run or
# clean up, and nothing survives a restart. "default" is Django's own default, stated (the sign-in throttle
# and the advisor's limit count there); "advisor" holds computed answers and rendered answer pages, kept apart
# so a flood of distinct questions can only evict other answers, never those counters. Its keys hold the
# catalog version, so a staff edit is seen at once; with several web processes each keeps its own copy.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "default"},
    "advisor": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "advisor",
                "TIMEOUT": 3600, "OPTIONS": {"MAX_ENTRIES": 400}},
}
# Work the advisor has not cached (a new answer, matrix or API question, a share) costs units from a budget
# per client address and window: LLMSITE_ADVISOR_LIMIT units per LLMSITE_ADVISOR_LIMIT_WINDOW_S seconds.
LLMSITE_ADVISOR_LIMIT = env_int("LLMSITE_ADVISOR_LIMIT", 120, minimum=1, maximum=10_000_000)
LLMSITE_ADVISOR_LIMIT_WINDOW_S = env_int("LLMSITE_ADVISOR_LIMIT_WINDOW_S", 60, minimum=1, maximum=86_400)
# Shares are rows in the database: each address may create this many per hour (asking again for a link that
# exists already costs nothing).
LLMSITE_ADVISOR_SHARES_PER_HOUR = env_int("LLMSITE_ADVISOR_SHARES_PER_HOUR", 30, minimum=1, maximum=1_000_000)
