"""Celery tasks (bots): thin wrappers around services."""
