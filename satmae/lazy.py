"""Lazy package attributes (PEP 562): public names imported from their modules on first use.

Packages whose names pull in heavy libraries (torch models, rasterio, xarray) export them this
way, so that ``import satmae`` and ``satmae --help`` stay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(
    package: str, table: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name]`` and caches the attribute.

    Args:
        package: the package's ``__name__``, for the error message.
        table: public name -> module that defines it.
        namespace: the package's ``globals()``, where imported names are cached.
    """

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
