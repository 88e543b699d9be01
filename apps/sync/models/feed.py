"""The change feed, cursors, conflicts, tombstones and dead letters."""

__all__: list[str] = []
