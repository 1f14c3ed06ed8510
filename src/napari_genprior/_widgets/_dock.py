"""Docking: the plugin's widgets share one tabbed dock area instead of stacking.

Four widgets stacked in napari's right dock area need about 2,000 pixels of height (issue 15:
the window grew to 1916 px); as tabs they need the tallest one's. napari docks a widget after
constructing it, so each widget asks, from its constructor, to be tabbed with the plugin's
other docked widgets once the event loop runs.
"""

from __future__ import annotations

from typing import Any

#: Dock titles of this plugin's widgets end with this (napari: "<widget> (<plugin>)").
PLUGIN_SUFFIX = "(napari-genprior)"


def _dock_of(qwidget: Any) -> Any:
    from qtpy.QtWidgets import QDockWidget

    w = qwidget
    while w is not None and not isinstance(w, QDockWidget):
        w = w.parentWidget()
    return w


def tabify_when_docked(widget: Any) -> None:
    """Once ``widget`` (a magicgui container) is docked, put it in a tab next to the plugin's
    other docked widgets (those of the same dock area), and show it."""
    from qtpy.QtCore import QTimer

    def tabify() -> None:
        try:
            dock = _dock_of(widget.native)
        except RuntimeError:  # closed before the event loop ran
            return
        if dock is None or dock.isFloating():
            return
        window = dock.parentWidget()
        from qtpy.QtWidgets import QDockWidget, QMainWindow

        if not isinstance(window, QMainWindow):
            return
        area = window.dockWidgetArea(dock)
        for other in window.findChildren(QDockWidget):
            if other is dock or not other.isVisible() or other.isFloating():
                continue
            if PLUGIN_SUFFIX in other.windowTitle() or _is_ours(other):
                if window.dockWidgetArea(other) == area:
                    window.tabifyDockWidget(other, dock)
                    dock.show()
                    dock.raise_()
                    return

    QTimer.singleShot(0, tabify)


def _is_ours(dock: Any) -> bool:
    inner = dock.widget()
    return bool(inner is not None and inner.property("genprior_widget"))


def mark(widget: Any) -> None:
    """Mark ``widget`` as one of this plugin's (for docks titled otherwise) and tab it."""
    widget.native.setProperty("genprior_widget", True)
    tabify_when_docked(widget)


def raise_dock(widget: Any) -> None:
    """Bring ``widget``'s tab to the front (when it is docked)."""
    try:
        dock = _dock_of(widget.native)
    except RuntimeError:
        return
    if dock is not None:
        dock.show()
        dock.raise_()


def wrapping_label(**kwargs: Any) -> Any:
    """A magicgui Label whose text wraps: a long message (a warning, a prior check) must not
    widen the dock over the canvas."""
    from magicgui.widgets import Label
    from qtpy.QtWidgets import QSizePolicy

    label = Label(**kwargs)
    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label
