"""The Compare dock widget.

It scores result layers against a reference layer with :mod:`napari_genprior.metrics` (PSNR,
SSIM, NMSE) and, when a measurement layer is chosen, against the measurement (data consistency
``||A x - y|| / ||y||``, which needs no ground truth). One table row per result, with the method
and seconds that the Reconstruct widget records in ``metadata["genprior"]``, and a plot of the
loss histories of the results whose metadata holds one (``metadata["genprior"]["history"]``).
No maths here: every number comes from :mod:`napari_genprior.metrics`. Layers are only read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton, Table, create_widget
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning

from ._dock import mark, wrapping_label
from ._plot import CurvePlot, image_layer_select

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..operators import Operator

COLUMNS = {  # row key -> (table header, format)
    "method": ("method", "{}"),
    "psnr": ("PSNR (dB)", "{:.2f}"),
    "ssim": ("SSIM", "{:.3f}"),
    "nmse": ("NMSE", "{:.3g}"),
    "data_consistency": ("||Ax-y||/||y||", "{:.3g}"),
    "seconds": ("seconds", "{:.1f}"),
    "note": ("note", "{}"),
}
#: How many of the newest results Compare preselects.
NEWEST = 6
#: Row names (layer names) are elided beyond this width (pixels); the table grows up to the other.
ROW_NAME_WIDTH, MAX_TABLE_WIDTH = 180, 720


def _reference_metrics() -> dict[str, Callable[[Any, Any], float]]:
    from .. import metrics

    return {"psnr": metrics.psnr, "ssim": metrics.ssim, "nmse": metrics.nmse}


class CompareWidget(Container):
    """Compare result layers with a reference layer (and a measurement), in a table and a plot."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.reference = create_widget(
            annotation=Image,
            label="reference",
            options={
                "tooltip": "The ground truth the results are scored against (PSNR, SSIM, NMSE)."
            },
        )
        self.results = image_layer_select(
            viewer,
            "results",
            "The layers to score (ctrl/shift-click for several); each must have the "
            "reference's shape.",
        )
        self.measurement = ComboBox(
            label="measurement",
            choices=self._measurement_layers,
            nullable=True,
            value=None,
            tooltip="Optional: a measurement layer made by this plugin (it carries its operator). "
            "Its data consistency ||A x - y|| / ||y|| is reported for results of the "
            "operator's image shape.",
        )
        self.compare_button = PushButton(text="Compare", tooltip="Score the results.")
        self.status = wrapping_label(value="")
        self.table = Table(
            value={"data": [], "index": [], "columns": [h for h, _ in COLUMNS.values()]},
            tooltip="One row per result; blank where a number cannot be computed (see the note).",
        )
        super().__init__(
            widgets=[
                self.reference,
                self.results,
                self.measurement,
                self.compare_button,
                self.status,
                self.table,
            ]
        )
        mark(self)  # tabbed with the plugin's other docked widgets
        self.table.native.setEditTriggers(self.table.native.EditTrigger.NoEditTriggers)
        # magicgui's delegate shows every number with 4 decimals ("23.2900"); ours are already
        # formatted per column (COLUMNS): shown as they are
        from qtpy.QtWidgets import QStyledItemDelegate

        self.table.native.setItemDelegate(QStyledItemDelegate(self.table.native))
        # the row names (layer names) are long: elided, so that the numbers fit beside them
        self.table.native.verticalHeader().setMaximumWidth(ROW_NAME_WIDTH)
        self.table.native.setWordWrap(False)
        self.results.native.setMaximumHeight(110)
        self.table.native.setMinimumHeight(190)  # six rows at a glance
        self.table.native.setSizeAdjustPolicy(self.table.native.SizeAdjustPolicy.AdjustToContents)
        self.history_plot = CurvePlot(
            title="loss histories (each over its first value)",
            xlabel="step",
            ylabel="loss / first loss",
        )
        self.history_plot.setToolTip(
            "The loss per step of results whose metadata records it, "
            "each divided by its own first value: methods minimise "
            "different losses, so only their shapes compare."
        )
        self.native.layout().addWidget(self.history_plot)
        self.rows: list[dict[str, Any]] = []
        """The last comparison, one dict per result: ``layer``, ``method``, ``seconds``,
        ``psnr``, ``ssim``, ``nmse``, ``data_consistency`` (None where not computed), ``note``
        (why something is blank) and ``history`` (the loss per step, or None)."""
        self.compare_button.changed.connect(self.compare)
        self.preselect()

    def preselect(self) -> None:
        """Choose what a user most likely compares, where nothing is chosen yet: the newest
        results (up to :data:`NEWEST`, the layers Reconstruct made), the measurement they were
        made from, and as the reference an image layer that is neither."""
        self.reset_choices()
        roles = {
            id(layer): (layer.metadata.get("genprior") or {}).get("role")
            for layer in self._viewer.layers
            if isinstance(layer, Image) and isinstance(layer.metadata.get("genprior"), dict)
        }
        results = [
            layer for layer in self.results.choices if roles.get(id(layer)) == "reconstruction"
        ]
        if results and not self.results.value:
            self.results.value = results[-NEWEST:]
        chosen = list(self.results.value)
        if self.measurement.value is None and chosen:
            source = (chosen[-1].metadata.get("genprior") or {}).get("source_layer")
            for name, layer in self._measurement_layers():
                if name == source:
                    self.measurement.value = layer
        ref = self.reference.value
        if ref is None or ref in chosen or roles.get(id(ref)) is not None:
            plain = [
                layer
                for layer in self.results.choices
                if id(layer) not in roles and not layer.name.endswith("[preview]")
            ]
            if plain:
                self.reference.value = plain[0]

    def _measurement_layers(self, _widget: Any = None) -> list[tuple[str, Image]]:
        """Image layers that carry an operator and are measurements (not reconstructions)."""
        out = []
        for layer in self._viewer.layers:
            info = layer.metadata.get("genprior") if isinstance(layer, Image) else None
            if (
                isinstance(info, dict)
                and "operator" in info
                and info.get("role", "measurement") == "measurement"
            ):
                out.append((layer.name, layer))
        return out

    # -- comparing ---------------------------------------------------------------------------
    def compare(self) -> None:
        """Score the chosen results and show them in the table and the plot."""
        reference = self.reference.value
        if reference is None:
            show_warning("Pick a reference layer (the ground truth) to compare against.")
            return
        if not self.results.value:
            self.preselect()  # the newest results, where none is chosen
        results = list(self.results.value)
        if not results:
            show_warning("Pick one or more result layers to compare.")
            return
        problems: list[str] = []
        y, A = self._measurement(problems)
        ref = np.asarray(reference.data)
        self.rows = [self._score(layer, reference.name, ref, y, A, problems) for layer in results]
        self._show(self.rows)
        if problems:
            show_error("Compare: " + " ".join(problems))
        scored = sum(row["psnr"] is not None for row in self.rows)
        self.status.value = (
            f"{scored} of {len(self.rows)} result(s) scored against {reference.name!r}"
        )
        if not problems:
            show_info(self.status.value)

    def _measurement(self, problems: list[str]) -> tuple[np.ndarray | None, Operator | None]:
        """``(y, A)`` of the chosen measurement layer, or ``(None, None)``."""
        from .._layerdata import measurement_of

        layer = self.measurement.value
        if layer is None:
            return None, None
        try:
            return measurement_of(layer.data, layer.metadata)
        except ValueError as exc:
            problems.append(f"no data consistency from {layer.name!r}: {exc}")
            return None, None

    def _score(
        self,
        layer: Image,
        ref_name: str,
        ref: np.ndarray,
        y: np.ndarray | None,
        A: Operator | None,
        problems: list[str],
    ) -> dict[str, Any]:
        """One row: what the metrics give for ``layer``; None (and a note) where they cannot."""
        from ..metrics import data_consistency

        info = layer.metadata.get("genprior")
        info = info if isinstance(info, dict) else {}
        row: dict[str, Any] = {
            "layer": layer.name,
            "method": str(info.get("method", "")),
            "seconds": _as_float(info.get("seconds")),
            "psnr": None,
            "ssim": None,
            "nmse": None,
            "data_consistency": None,
            "note": "",
        }
        notes = []
        data = np.asarray(layer.data)
        if data.shape != ref.shape:
            notes.append(f"shape {data.shape} is not the reference's {ref.shape}")
            problems.append(
                f"{layer.name!r} has shape {data.shape} but the reference "
                f"{ref_name!r} has shape {ref.shape}; its metrics are left blank."
            )
        else:
            for key, metric in _reference_metrics().items():
                try:
                    row[key] = metric(ref, data)
                except ValueError as exc:
                    notes.append(f"{key}: {exc}")
        if A is not None:
            if data.shape != tuple(A.shape):
                notes.append(f"the measurement is of {tuple(A.shape)} images")
            else:
                try:
                    row["data_consistency"] = data_consistency(y, A, data)
                except ValueError as exc:
                    notes.append(f"data consistency: {exc}")
        row["note"] = "; ".join(notes)
        row["history"] = _as_history(info.get("history"))
        return row

    # -- showing -----------------------------------------------------------------------------
    def _show(self, rows: list[dict[str, Any]]) -> None:
        """Fill the table and plot the loss histories of ``rows``."""
        cells = [
            [
                ("" if row[key] is None else fmt.format(row[key]))
                for key, (_, fmt) in COLUMNS.items()
            ]
            for row in rows
        ]
        self.table.value = {
            "data": cells,
            "index": [row["layer"] for row in rows],
            "columns": [header for header, _ in COLUMNS.values()],
        }
        table = self.table.native
        table.resizeColumnsToContents()
        # wide enough for every column and the row names (up to their elided width): the dock
        # grows rather than hide the time column behind a scroll bar
        width = (
            table.verticalHeader().sizeHint().width()
            + sum(table.columnWidth(i) for i in range(table.columnCount()))
            + table.verticalScrollBar().sizeHint().width()
            + 2 * table.frameWidth()
        )
        table.setMinimumWidth(min(width, MAX_TABLE_WIDTH))
        self.history_plot.plot(
            {row["layer"]: _relative(row["history"]) for row in rows if row["history"] is not None}
        )


def _relative(history: list[float]) -> list[float]:
    """``history`` over its first finite non-zero value (the losses of different methods have
    different meanings and scales; their shapes compare)."""
    first = next((v for v in history if math.isfinite(v) and v != 0.0), None)
    return list(history) if first is None else [v / abs(first) for v in history]


def _as_float(value: Any) -> float | None:
    """A number from metadata (which may have been edited by hand), or None."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _as_history(history: Any) -> list[float] | None:
    """A loss history from metadata as a list of floats, or None when there is none usable."""
    if isinstance(history, (str, bytes)) or not isinstance(history, (Sequence, np.ndarray)):
        return None
    try:
        values = [float(v) for v in history]
    except (TypeError, ValueError):
        return None
    return values or None
