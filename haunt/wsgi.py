"""WSGI entry point: production serves the REST API and admin with gunicorn from here."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "haunt.settings")
application = get_wsgi_application()
