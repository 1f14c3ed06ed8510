"""``napari-genprior demo``: a viewer with the nuclei sample and the Reconstruct widget docked."""

from __future__ import annotations

import napari

from .reconstruct import ReconstructWidget


def open_demo(steps: int | None = None, seed: int = 0, device: str = "auto",
              run: bool = False) -> tuple["napari.Viewer", ReconstructWidget]:
    """Open napari with the degraded nuclei sample selected in a docked Reconstruct widget."""
    viewer = napari.Viewer(title="napari-genprior demo")
    viewer.open_sample("napari-genprior", "nuclei-inpaint")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    measurement = [lyr for lyr in viewer.layers if "operator" in lyr.metadata.get("genprior", {})]
    widget.layer.value = measurement[-1]
    if steps is not None:
        widget.steps.value = steps
    widget.seed.value = seed
    widget.device.value = device if device in widget.device.choices else "auto"
    if run:
        widget.start()
    return viewer, widget
