"""WSGI entry point: production serves the REST API and admin with gunicorn from here."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "haunt.settings")
django_application = get_wsgi_application()

from haunt.shared_cache import SharedResponseCache  # noqa: E402 (needs the settings above)

application = SharedResponseCache(django_application)
