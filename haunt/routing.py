from django.urls import path

from apps.markets.routing import websocket_urlpatterns as markets_websockets
from haunt.consumers import UserEventsConsumer

websocket_urlpatterns = [
    path("ws/events", UserEventsConsumer.as_asgi()),
    *markets_websockets,
]
