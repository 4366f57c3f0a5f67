# WebSocket routes, wrapped by llmsite/asgi.py in SameOriginValidator(AuthMiddlewareStack(...)).
from django.urls import path

from chat.consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
]
