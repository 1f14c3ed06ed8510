"""The plugin's docks open as tabs of one dock, not stacked (README: "docked together in one
tabbed dock"), whichever way they are opened."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui

WIDGETS = ("Simulate", "Reconstruct", "Train prior", "Compare", "Deconvolve in chunks")


def test_widgets_opened_one_by_one_share_one_tabbed_dock(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QDockWidget

    viewer = make_napari_viewer(show=True)
    docks = []
    for name in WIDGETS:
        dock, _ = viewer.window.add_plugin_dock_widget("napari-genprior", name)
        qtbot.wait(50)  # as a user opens them, one menu click after another
        docks.append(dock)
    qtbot.wait(200)
    window = viewer.window._qt_window
    for dock in docks:
        assert isinstance(dock, QDockWidget)
        others = set(window.tabifiedDockWidgets(dock))
        assert others == set(docks) - {dock}, dock.windowTitle()
