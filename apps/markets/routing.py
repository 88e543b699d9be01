from django.urls import path

from apps.markets.consumers import PriceConsumer

websocket_urlpatterns = [
    path("ws/prices", PriceConsumer.as_asgi()),
]
