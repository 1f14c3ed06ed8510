"""The Compare dock widget in a real napari viewer (under Xvfb, via pytest-xvfb)."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
from napari.layers import Layer

import napari_genprior as ngp
from napari_genprior import metrics
from napari_genprior._layerdata import measurement_layer, measurement_of

pytestmark = pytest.mark.gui


@pytest.fixture
def scene(make_napari_viewer, nuclei64) -> SimpleNamespace:
    """A reference, a good and a bad result (one with a history), a cs measurement, the widget."""
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    ref = viewer.add_image(nuclei64, name="reference")
    good = viewer.add_image(
        nuclei64 + rng.normal(0, 5, nuclei64.shape).astype(np.float32),
        name="good",
        metadata={"genprior": {"method": "dip", "seconds": 2.5, "history": [4.0, 2.0, 1.0]}},
    )
    bad = viewer.add_image(
        nuclei64 + rng.normal(0, 40, nuclei64.shape).astype(np.float32),
        name="bad",
        metadata={"genprior": {"method": "adjoint", "seconds": 0.01}},
    )
    A = ngp.make_operator("cs", shape=nuclei64.shape, m=400, seed=0)
    y = A.measure(nuclei64, noise_std=1.0, seed=0)
    meas = viewer.add_layer(Layer.create(*measurement_layer(y, A, "cs measurement")))
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Compare")
    widget.reference.value = ref
    return SimpleNamespace(
        viewer=viewer, widget=widget, ref=ref, good=good, bad=bad, meas=meas, y=y
    )


def _rows(widget) -> dict[str, dict]:
    return {row["layer"]: row for row in widget.rows}


def _table_row(widget, name: str) -> list:
    table = widget.table.to_dict("split")
    return list(table["data"][list(table["index"]).index(name)])


def test_compare_ranks_results_with_the_metrics_numbers(scene):
    s, widget = scene, scene.widget
    layers = (s.ref, s.good, s.bad, s.meas)
    before = [(layer.data.copy(), repr(layer.metadata)) for layer in layers]
    widget.results.value = [s.good, s.bad]
    widget.measurement.value = s.meas
    n_layers = len(s.viewer.layers)
    with mock.patch("napari_genprior._widgets.compare.show_error") as error:
        widget.compare()
    error.assert_not_called()

    rows = _rows(widget)
    assert list(rows) == ["good", "bad"]
    g, b = rows["good"], rows["bad"]
    assert g["psnr"] > b["psnr"] and g["nmse"] < b["nmse"] and g["ssim"] > b["ssim"]
    assert g["data_consistency"] < b["data_consistency"]
    y, A = measurement_of(s.meas.data, s.meas.metadata)  # y as the layer stores it
    np.testing.assert_array_equal(y, s.y)
    for row, layer in ((g, s.good), (b, s.bad)):
        assert row["psnr"] == metrics.psnr(s.ref.data, layer.data)
        assert row["ssim"] == metrics.ssim(s.ref.data, layer.data)
        assert row["nmse"] == metrics.nmse(s.ref.data, layer.data)
        assert row["data_consistency"] == metrics.data_consistency(y, A, layer.data)
    assert (g["method"], g["seconds"], b["method"], b["seconds"]) == ("dip", 2.5, "adjoint", 0.01)

    assert _table_row(widget, "good")[:3] == ["dip", f"{g['psnr']:.2f}", f"{g['ssim']:.3f}"]
    # what the table shows: two decimals for dB, three for SSIM (issue 15)
    from qtpy.QtCore import QLocale, Qt

    native = widget.table.native
    shown = [
        native.itemDelegate().displayText(
            native.item(0, c).data(Qt.ItemDataRole.DisplayRole), QLocale()
        )
        for c in (1, 2)
    ]
    assert [len(t.split(".")[1]) for t in shown] == [2, 3], shown
    # each loss over its own first value: losses of different methods share one axis
    assert widget.history_plot.curves == {"good": [1.0, 0.5, 0.25]}, (
        "only results with a history, normalised"
    )
    assert len(s.viewer.layers) == n_layers
    for (data, meta), layer in zip(before, layers):
        assert np.array_equal(layer.data, data) and repr(layer.metadata) == meta


def test_data_consistency_is_blank_without_a_measurement(scene):
    widget = scene.widget
    widget.results.value = [scene.good, scene.bad]
    widget.measurement.value = None
    widget.compare()
    assert [row["data_consistency"] for row in widget.rows] == [None, None]
    assert all(row["psnr"] is not None for row in widget.rows)
    assert not _table_row(widget, "good")[4]  # blank


def test_only_measurement_layers_are_offered(scene):
    scene.viewer.add_image(
        np.zeros((8, 8)),
        name="rec",
        metadata={"genprior": {"role": "reconstruction", "operator": {"kind": "denoise"}}},
    )
    assert list(scene.widget.measurement.choices) == [None, scene.meas]


def test_a_mismatched_result_gets_a_notification_and_the_rest_is_scored(scene):
    widget = scene.widget
    small = scene.viewer.add_image(np.ones((32, 32), dtype=np.float32), name="small")
    before = small.data.copy()
    widget.results.value = [small, scene.good]
    widget.measurement.value = scene.meas
    with mock.patch("napari_genprior._widgets.compare.show_error") as error:
        widget.compare()
    error.assert_called_once()
    assert "'small'" in error.call_args.args[0] and "shape" in error.call_args.args[0]
    rows = _rows(widget)
    sm, g = rows["small"], rows["good"]
    assert sm["psnr"] is sm["ssim"] is sm["nmse"] is sm["data_consistency"] is None
    assert "shape" in sm["note"]
    assert g["psnr"] == metrics.psnr(scene.ref.data, scene.good.data)
    assert g["data_consistency"] is not None
    assert not _table_row(widget, "small")[1]  # blank
    np.testing.assert_array_equal(small.data, before)


def test_no_reference_or_no_results_warn(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Compare")
    with mock.patch("napari_genprior._widgets.compare.show_warning") as warning:
        widget.compare()
        viewer.add_image(np.ones((8, 8)), name="img")
        widget.results.value = []
        widget.compare()
    messages = [call.args[0] for call in warning.call_args_list]
    assert "reference" in messages[0] and "result" in messages[1]
    assert widget.rows == []


def test_result_metadata_edited_into_nonsense_leaves_blanks_not_errors(scene):
    # Before: a hand-edited "seconds" that is not a number raised inside the table formatting.
    s, widget = scene, scene.widget
    s.bad.metadata = {"genprior": {"method": 5, "seconds": "slow", "history": "abc"}}
    s.good.metadata = {"genprior": ["not", "a", "dict"]}
    widget.results.value = [s.good, s.bad]
    widget.compare()
    rows = _rows(widget)
    assert rows["bad"]["seconds"] is None and rows["bad"]["history"] is None
    assert rows["bad"]["method"] == "5" and rows["good"]["method"] == ""
    assert rows["bad"]["psnr"] is not None and rows["good"]["psnr"] > rows["bad"]["psnr"]


def test_compare_preselects_the_newest_results_and_their_measurement(make_napari_viewer, nuclei64):
    viewer = make_napari_viewer()
    clean = viewer.add_image(nuclei64, name="nuclei")
    A = ngp.make_operator("cs", shape=nuclei64.shape, m=400, seed=0)
    y = A.measure(nuclei64, noise_std=1.0, seed=0)
    meas = viewer.add_layer(Layer.create(*measurement_layer(y, A, "cs measurement")))
    names = []
    for k in range(8):  # eight results of that measurement, the newest last
        name = f"nuclei [result {k}]"
        meta = {"role": "reconstruction", "source_layer": meas.name, "method": "tv", "seconds": 1}
        viewer.add_image(nuclei64 + k, name=name, metadata={"genprior": meta})
        names.append(name)
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Compare")
    assert [layer.name for layer in widget.results.value] == names[-6:]
    assert widget.measurement.value is meas and widget.reference.value is clean
    widget.compare()
    assert [row["layer"] for row in widget.rows] == names[-6:]
    # the table is as wide as its columns and row names: no column behind a scroll bar
    table = widget.table.native
    needed = sum(table.columnWidth(i) for i in range(table.columnCount()))
    assert table.minimumWidth() >= needed + table.verticalHeader().sizeHint().width()
