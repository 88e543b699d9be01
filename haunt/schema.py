from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema


class HauntAutoSchema(AutoSchema):
    """Names nested `InputSerializer`/`OutputSerializer` classes after their view.

    Every view declares its own `InputSerializer`, so the default component name ("Input")
    would collide across views; `MeApi.OutputSerializer` becomes `MeOutput` instead.
    """

    def _get_serializer_name(self, serializer: Any, direction: str, bypass_extensions: bool = False) -> str:
        name: str = super()._get_serializer_name(serializer, direction, bypass_extensions)
        cls = serializer if isinstance(serializer, type) else type(serializer)
        outer = cls.__qualname__.rpartition(".")[0]
        if outer and getattr(getattr(cls, "Meta", None), "ref_name", None) is None:
            name = outer.split(".")[-1].removesuffix("Api") + name
        return name
