"""Small facts about layers that every dock widget needs: where one sits, whether it is still there."""

from __future__ import annotations

from typing import Any

from napari.layers import Image, Layer


def in_viewer(viewer: Any, layer: Layer | None) -> bool:
    """Whether ``layer`` is still in ``viewer`` (the user may have deleted it).

    By ``unique_id``: napari hands plugins a proxy of the viewer whose layers are proxies too,
    so identity and ``in`` do not recognise a layer a widget added itself.
    """
    return layer is not None and any(lyr.unique_id == layer.unique_id for lyr in viewer.layers)


def placement(layer: Image, ndim: int | None = None) -> dict[str, Any]:
    """Where a layer sits in the world: results are placed exactly over their input.

    With ``ndim`` smaller than the layer's (a preview of one plane of a stack), its last axes.
    """
    n = layer.ndim if ndim is None else ndim
    if n == layer.ndim:
        return {
            "scale": layer.scale,
            "translate": layer.translate,
            "rotate": layer.rotate,
            "shear": layer.shear,
        }
    pad = max(0, n - layer.ndim)
    return {
        "scale": (1.0,) * pad + tuple(layer.scale)[-n:],
        "translate": (0.0,) * pad + tuple(layer.translate)[-n:],
    }
