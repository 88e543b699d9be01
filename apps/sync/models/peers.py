"""Peers of the mesh, sync sessions and node metrics."""

__all__: list[str] = []
