# WebSocket routes, wrapped by llmsite/asgi.py in AllowedHostsOriginValidator(AuthMiddlewareStack(...)).
websocket_urlpatterns = []
