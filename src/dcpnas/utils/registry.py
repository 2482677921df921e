"""A name → class table filled by a class decorator (timm's ``@register_model`` idea), for the
strategies that are built from a config string (curvature modes, distances)."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T", bound=type)

__all__ = ["Registry"]


class Registry(Generic[T]):
    """``reg = Registry("curvature mode")``; ``@reg.register("ggn") class GGN: ...``; ``reg[name]``.

    The decorator sets the class's ``name`` attribute; a name registered twice is a bug.
    """

    def __init__(self, what: str):
        self.what = what
        self._classes: dict[str, T] = {}

    def register(self, name: str):
        def wrap(cls: T) -> T:
            if name in self._classes:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            cls.name = name
            self._classes[name] = cls
            return cls
        return wrap

    def names(self) -> tuple[str, ...]:
        return tuple(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __getitem__(self, name: str) -> T:
        if name not in self._classes:
            raise ValueError(f"unknown {self.what} {name!r}; expected one of {self.names()}")
        return self._classes[name]

    def values(self):
        return self._classes.values()
