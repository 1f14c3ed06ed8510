"""Priors trained (or loaded from files) in this napari session, shared by the dock widgets.

The Train widget adds what it trains; the Reconstruct widget lists these next to the bundled
priors. ``changed`` fires (with the new name) whenever one is added.
"""

from __future__ import annotations

from typing import Any

from psygnal import Signal


class _SessionPriors:
    changed = Signal(str)

    def __init__(self) -> None:
        self._priors: dict[str, Any] = {}

    def add(self, name: str, prior: Any) -> str:
        """Register ``prior`` under ``name`` (made unique with a suffix); returns the name used."""
        base, k = name, 2
        while name in self._priors:
            name, k = f"{base} ({k})", k + 1
        self._priors[name] = prior
        self.changed.emit(name)
        return name

    def get(self, name: str) -> Any:
        return self._priors[name]

    def names(self) -> list[str]:
        return list(self._priors)

    def clear(self) -> None:
        self._priors.clear()


SESSION_PRIORS = _SessionPriors()
