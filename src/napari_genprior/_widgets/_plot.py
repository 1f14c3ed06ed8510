"""Pieces the Train and Compare dock widgets share: a curve plot and a multi-select of images.

The Train widget plots its loss per epoch, the Compare widget the loss histories of the results
it compares; both through :class:`CurvePlot`, so there is one way to draw a curve in this plugin.
Both pick several image layers with :func:`image_layer_select`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Select
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image

if TYPE_CHECKING:  # pragma: no cover
    import napari


class CurvePlot(FigureCanvasQTAgg):
    """A Qt canvas with one axes that shows named curves, the y axis logarithmic when it can be.

    Parameters
    ----------
    title : str
        The axes' title.
    xlabel, ylabel : str
        Axis labels.
    height : float
        Height of the figure in inches (the width follows the dock).

    Attributes
    ----------
    curves : dict of str to list of float
        What is shown now (name -> y values), for callers and tests.
    """

    def __init__(
        self, title: str = "", xlabel: str = "", ylabel: str = "", height: float = 2.6
    ) -> None:
        self.figure = Figure(figsize=(4.0, height), layout="constrained")
        super().__init__(self.figure)
        self.axes = self.figure.add_subplot()
        self._labels = (title, xlabel, ylabel)
        self.curves: dict[str, list[float]] = {}
        self.setMinimumHeight(int(height * 60))
        self.plot({})

    def plot(
        self, curves: Mapping[str, Sequence[float]], *, x_start: int = 1, logy: bool = True
    ) -> None:
        """Replace what is shown with ``curves`` (name -> values) and redraw.

        Parameters
        ----------
        curves : mapping of str to sequence of float
            The y values of each curve; the x values are ``x_start, x_start + 1, ...``.
        x_start : int
            The x value of every curve's first point (1 for epochs and steps).
        logy : bool
            A logarithmic y axis, used only when every value is positive and finite.
        """
        self.curves = {name: [float(v) for v in values] for name, values in curves.items()}
        if getattr(self, "_drawing", False):
            # re-entered from an event loop that a draw in progress spun (napari's progress
            # bar and add_image process events): the outer call draws the latest curves
            return
        self._drawing = True
        try:
            self._draw_curves(x_start, logy)
        finally:
            self._drawing = False

    def _draw_curves(self, x_start: int, logy: bool) -> None:
        # The axes are cleared only once, when the canvas is made: matplotlib's clear() resets
        # the spines, whose re-placement recurses a few hundred frames deep, and an update
        # arriving deep in nested event loops then hit the recursion limit. Curves are lines
        # whose data are replaced; new names get a line, names gone lose theirs.
        ax = self.axes
        lines: dict[str, Any] = getattr(self, "_lines", None) or {}
        if not hasattr(self, "_lines"):
            ax.clear()
            title, xlabel, ylabel = self._labels
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
        for name in [n for n in lines if n not in self.curves]:
            lines.pop(name).remove()
        for name, vs in self.curves.items():
            xs = range(x_start, x_start + len(vs))
            marker = "." if len(vs) < 30 else "None"
            if name in lines:
                lines[name].set_data(list(xs), vs)
                lines[name].set_marker(marker)
            else:
                (lines[name],) = ax.plot(list(xs), vs, label=name, marker=marker)
        self._lines = lines
        values = [v for vs in self.curves.values() for v in vs]
        scale = "log" if logy and values and all(0 < v < float("inf") for v in values) else "linear"
        if ax.get_yscale() != scale:
            ax.set_yscale(scale)
        ax.relim()
        ax.autoscale_view()
        legend = ax.get_legend()
        if self.curves:
            ax.legend(fontsize=7, loc="best")
        elif legend is not None:
            legend.remove()
        self.draw_idle()


def image_layer_select(viewer: napari.viewer.Viewer, label: str, tooltip: str) -> Select:
    """A multi-select list of the viewer's image layers (the values are the layers).

    Its choices are re-read whenever napari resets the choices of the dock widget that holds it
    (napari does so when layers are added, removed, reordered or renamed).
    """

    def choices(_widget: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, Image)]

    return Select(label=label, choices=choices, tooltip=tooltip)
