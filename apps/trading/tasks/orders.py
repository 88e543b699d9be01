"""Celery tasks (orders): thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from apps.trading.services.triggers import resting_orders_sweep


@shared_task
def resting_orders_sweep_task() -> int:
    """Safety net behind the engine runner: evaluate resting orders and liquidations at the
    current marks (covers batches published while the runner was down). Returns the fills.

    Never retried: the next scheduled sweep supersedes a failed one."""
    return resting_orders_sweep().filled
