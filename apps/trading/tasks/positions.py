"""Celery tasks (positions): thin wrappers around services."""
