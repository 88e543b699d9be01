"""ASGI entry point (daphne): WebSockets always, HTTP in development."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "haunt.settings")
django_asgi_app = get_asgi_application()  # set up Django before importing consumers

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from haunt import routing  # noqa: E402
from haunt.ws_auth import HauntAuthMiddlewareStack, browser_origin_validator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": browser_origin_validator(
            HauntAuthMiddlewareStack(URLRouter(routing.websocket_urlpatterns))
        ),
    }
)
