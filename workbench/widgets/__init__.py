"""ipywidgets for the analyst notebooks; each widget is a class with a Python API (testable
without a browser) whose ``.widget`` is what a notebook displays."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ProfileExplorer": "workbench.widgets.profile_explorer",
    "SegmentBuilder": "workbench.widgets.segment_builder",
}


def __getattr__(name: str) -> Any:  # lazy: importing one widget does not import the others
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ProfileExplorer", "SegmentBuilder"]
