"""Layer metadata edited by hand into nonsense: ``measurement_from_layer`` (what the Reconstruct
and Compare widgets call) either rebuilds a measurement that fits its operator or raises
ValueError/TypeError with a sentence; never another exception."""

from __future__ import annotations

import copy
import os

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import napari_genprior as ngp
from napari_genprior._layerdata import measurement_layer
from napari_genprior.operators import Operator

EXPECTED = (ValueError, TypeError)


def _layers():
    """Valid measurement layers of each sort: plain image, complex k-space, cs vector."""
    x = np.random.default_rng(0).random((12, 12))
    out = []
    for kind, params in [
        ("blur", {"sigma": 1.0}),
        ("inpaint", {"fraction": 0.5, "seed": 1}),
        ("mri", {"acceleration": 2, "seed": 1}),
        ("cs", {"m": 40, "seed": 1}),
        ("downsample", {"factor": 2}),
    ]:
        A = ngp.make_operator(kind, shape=x.shape, **params)
        data, kwargs, _ = measurement_layer(A.measure(x, noise_std=0.01, seed=0), A, kind)
        out.append((data, kwargs["metadata"]))
    return out


LAYERS = _layers()
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["mri", "cs", "blur", "float64", "complex128", "AAAA"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "kind",
                    "shape",
                    "mask",
                    "sigma",
                    "m",
                    "seed",
                    "float64",
                    "complex128",
                    "path",
                    "slices",
                    "dataset",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


def _paths(obj, prefix=()):
    """Every key path into nested dicts/lists."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list) and len(obj) < 50:
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


@settings(
    max_examples=int(os.environ.get("GENPRIOR_FUZZ_EXAMPLES", "300")),
    deadline=5_000,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_nonsense_metadata_is_a_value_or_type_error(data):
    layer_data, meta = LAYERS[data.draw(st.integers(0, len(LAYERS) - 1), label="layer")]
    meta = copy.deepcopy(meta)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        paths = list(_paths(meta))
        path = data.draw(st.sampled_from(paths), label="path")
        action = data.draw(st.sampled_from(["replace", "delete", "add"]), label="action")
        parent = meta
        for key in path[:-1]:
            parent = parent[key]
        if not path:
            meta = data.draw(JUNK | st.just({}), label="metadata")
            break
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][
                data.draw(st.sampled_from(["x", "slices", "source", "measurement", "mask"]))
            ] = data.draw(JUNK)
        else:
            parent[path[-1]] = data.draw(JUNK, label="value")
    shown = data.draw(
        st.sampled_from([layer_data, layer_data[:3], np.zeros((0, 0)), "pixels"]), label="data"
    )
    try:
        y, A = ngp.measurement_from_layer(shown, meta)
    except EXPECTED as exc:
        assert len(str(exc)) > 15, exc
        event(type(exc).__name__)
        return
    event("rebuilt")
    assert isinstance(A, Operator)
    assert np.asarray(y).shape[-len(A.measurement_shape) :] == A.measurement_shape
