"""Celery tasks (orders): thin wrappers around services."""
