"""ASGI entry point: HTTP and WebSocket on one port (served by daphne)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmsite.settings")
# Django must be set up before anything imports models, so routing is imported after this line.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from chat.limits import CoolingDownGate  # noqa: E402
from chat.openai_api.asgi import ApiRouter  # noqa: E402
from chat.origin import SameOriginValidator  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from llmsite.health import HealthzCache  # noqa: E402
from llmsite.proxy import ClientAddressMiddleware  # noqa: E402
from llmsite.signedin import NoteSignedInHandshakes  # noqa: E402

if settings.REDIS_URL:
    # Listen for the LLM workers' announcements from the start, not from the first request.
    from chat.worker import get_manager  # noqa: E402

    get_manager().start()

# HTTP and WebSocket see the same client address (a trusted proxy's X-Forwarded-For, or the peer).
application = ClientAddressMiddleware(ProtocolTypeRouter(
    {
        "http": ApiRouter(django_asgi_app),  # /v1/: the OpenAI-compatible API, on a handler of its own
        # Scheme, host and port of the Origin, not just its host name (AllowedHostsOriginValidator): see chat/origin.py.
        "websocket": SameOriginValidator(CoolingDownGate(AuthMiddlewareStack(
            NoteSignedInHandshakes(URLRouter(websocket_urlpatterns))))),
    }
))
# Outermost: anonymous GET /healthz from a copy at most LLMSITE_HEALTHZ_MAX_AGE_MS old (llmsite/health.py).
application = HealthzCache(application, max_age_s=settings.LLMSITE_HEALTHZ_MAX_AGE_MS / 1000,
                           session_cookie=settings.SESSION_COOKIE_NAME)
