"""The device and dtype shorthands shared by modules and criteria (Lua: ``cuda``, ``float``...).

A class that defines ``to(device=None, dtype=None)`` and keeps ``_device`` and ``_dtype`` gets
``cuda()``, ``cpu()``, ``float()``, ``double()`` and the ``device`` / ``dtype`` properties from
:class:`Convertible`, so that one mechanism (its ``to``) is behind all of them.
"""
from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["Convertible"]

_T = TypeVar("_T", bound="Convertible")


class Convertible:
    """Mixin: ``cuda``/``cpu``/``float``/``double`` as calls of the class's own ``to``."""

    _device: str
    _dtype: Any

    def to(self: _T, device: str | None = None, dtype: Any = None) -> _T:
        """Move to ``device`` and/or cast to the floating ``dtype``; returns self."""
        raise NotImplementedError

    def cuda(self: _T) -> _T:
        """Move to the GPU (Lua: ``cuda``)."""
        return self.to("cuda")

    def cpu(self: _T) -> _T:
        """Move to the host (Lua: ``float`` after ``cuda``)."""
        return self.to("cpu")

    def float(self: _T) -> _T:
        """Cast to float32 (Lua: ``float``)."""
        return self.to(dtype="float32")

    def double(self: _T) -> _T:
        """Cast to float64 (Lua: ``double``)."""
        return self.to(dtype="float64")

    @property
    def device(self) -> str:
        """The device this object's arrays live on."""
        return self._device

    @property
    def dtype(self) -> Any:
        """The floating dtype of this object's arrays (and of the inputs it casts)."""
        return self._dtype
