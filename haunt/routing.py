from django.urls import path, re_path

from apps.markets.consumers_binance import BinanceStreamConsumer
from apps.markets.routing import websocket_urlpatterns as markets_websockets
from haunt.consumers import UserEventsConsumer

websocket_urlpatterns = [
    path("ws/events", UserEventsConsumer.as_asgi()),
    *markets_websockets,
    # Binance-compatible raw streams: /ws, /ws/<n> (ccxt) and /ws/<stream>[/<stream>...].
    # After the exact routes above, so /ws/prices and /ws/events keep their consumers.
    re_path(r"^ws(?:/(?P<streams>[A-Za-z0-9@_/]*))?$", BinanceStreamConsumer.as_asgi()),
]
