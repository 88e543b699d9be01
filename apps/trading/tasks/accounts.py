"""Celery tasks (accounts): thin wrappers around services."""
