"""napari sample data: the files in ``sample_data/`` and procedural phantoms, as layers.

Each degraded sample's layer carries its operator spec in ``metadata["genprior"]`` so that the
Reconstruct widget rebuilds the operator without asking for parameters. The measurements of
``nuclei_blur``, ``mri_phantom`` and ``digit_cs`` are simulated when they are loaded, with fixed
seeds (so they are the same every time), and made into layers by
:func:`napari_genprior._layerdata.measurement_layer`; ``sample_data/README.md`` says how.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

import numpy as np

from ._io import DIGITS, NUCLEI, NUCLEI_INPAINT, read_tiff, sample_path
from ._layerdata import measurement_layer
from .operators import make_operator
from .synthetic import brain_phantoms
from .volumes import nuclei_volume

#: Seed of the MRI sample's phantom: the bundled ``mri-vae`` prior was trained on seed 0.
MRI_PHANTOM_SEED = 2026


def _copies(make: Callable[[], list[tuple]]) -> Callable[[], list[tuple]]:
    """Name a repeated load "<name> (copy 2)", ... (its measurement layers too) when the current
    viewer already holds the sample: napari would add " [1]", which reads like one of this
    plugin's results ("nuclei [csgm, nuclei-vae]")."""

    @wraps(make)
    def load() -> list[tuple]:
        layers = make()
        try:
            import napari

            viewer = napari.current_viewer()
        except Exception:  # noqa: BLE001 - no viewer, no napari: names as they are
            viewer = None
        if viewer is None:
            return layers
        base, names = layers[0][1]["name"], {lyr.name for lyr in viewer.layers}
        if base not in names:
            return layers
        k = 2
        while f"{base} (copy {k})" in names:
            k += 1
        new = f"{base} (copy {k})"
        return [
            (
                data,
                {**kw, "name": new + kw["name"][len(base) :]}
                if str(kw.get("name", "")).startswith(base)
                else kw,
                kind,
            )
            for data, kw, kind in layers
        ]

    return load


def _nuclei() -> list[tuple]:
    """The clean 128x128 fluorescence-nuclei crop."""
    data, meta = read_tiff(sample_path(NUCLEI))
    return [(data, {"name": "nuclei", "colormap": "gray", "metadata": {"source": meta}}, "image")]


nuclei = _copies(_nuclei)


@_copies
def nuclei_inpaint() -> list[tuple]:
    """The clean nuclei and their measurement: 50% of the pixels missing, Gaussian noise."""
    y, meta = read_tiff(sample_path(NUCLEI_INPAINT))
    clean = _nuclei()
    x = clean[0][0]
    return clean + [
        (
            y,
            {
                "name": "nuclei [50% pixels, noisy]",
                "colormap": "gray",
                "contrast_limits": [float(x.min()), float(x.max())],
                "metadata": {
                    "genprior": {
                        "operator": meta["operator"],
                        "noise_std": meta["noise_std"],
                        "role": "measurement",
                        "modality": "fluorescence",
                    }
                },
            },
            "image",
        )
    ]


@_copies
def nuclei_blur() -> list[tuple]:
    """The clean nuclei and their measurement: Gaussian blur (sigma 2 px), Poisson noise.

    The blurred image's brightest pixel is taken to be 100 expected photons
    (``Operator.measure(photons=100)``), and the counts are scaled back to the image's units.
    """
    clean = _nuclei()
    x = clean[0][0]
    A = make_operator("blur", shape=x.shape, sigma=2.0)
    photons = 100.0
    y = A.measure(x, photons=photons, seed=0)
    return clean + [
        measurement_layer(
            y,
            A,
            "nuclei [blur 2 px, Poisson]",
            photons=photons,
            modality="fluorescence",
            contrast_limits=[float(x.min()), float(x.max())],
        )
    ]


@_copies
def mri_phantom() -> list[tuple]:
    """A 256x256 brain phantom and its 4x undersampled k-space (variable-density columns).

    The k-space layer shows ``log(1 + |k|)``; the exact complex k-space is in its metadata.
    """
    x = brain_phantoms(1, (256, 256), seed=MRI_PHANTOM_SEED)[0]
    A = make_operator(
        "mri", shape=x.shape, acceleration=4, center_fraction=0.08, mask="variable-density", seed=0
    )
    noise_std = 0.005
    y = A.measure(x, noise_std=noise_std, seed=1)
    return [
        (x, {"name": "brain phantom", "colormap": "gray", "contrast_limits": [0.0, 1.0]}, "image"),
        measurement_layer(
            y, A, "brain phantom [mri 4x k-space]", noise_std=noise_std, modality="mri"
        ),
    ]


@_copies
def digit_cs() -> list[tuple]:
    """A held-out handwritten digit (28x28, in [0, 1]) and 200 Gaussian random projections.

    The measurement layer is a 1x200 strip; the exact values are in its metadata.
    """
    with np.load(sample_path(DIGITS)) as digits:
        x = digits["images"][0].astype(np.float32) / 255.0
    A = make_operator("cs", shape=x.shape, m=200, seed=0)
    noise_std = 0.01
    y = A.measure(x, noise_std=noise_std, seed=1)
    return [
        (x, {"name": "digit", "colormap": "gray", "contrast_limits": [0.0, 1.0]}, "image"),
        measurement_layer(
            y, A, "digit [cs, 200 measurements]", noise_std=noise_std, modality="digits"
        ),
    ]


#: The 3D sample's microscope: widefield, NA 1.2 water, 520 nm, 100 nm pixels, 250 nm z steps.
STACK_OPTICS = {
    "microscope": "widefield",
    "na": 1.2,
    "wavelength": 0.52,
    "dxy": 0.1,
    "dz": 0.25,
    "immersion_index": 1.33,
    "sample_index": 1.33,
}


@_copies
def nuclei_stack() -> list[tuple]:
    """A generated 3D nuclei stack (24x96x96 voxels of 0.25x0.1x0.1 um) and its widefield
    image: the PSF computed by psfmodels from the optics, Poisson noise at 300 photons.

    Both layers have the voxel size as their scale (micrometres), so the stack looks right in
    3D and the PSF controls read it.
    """
    voxel = (STACK_OPTICS["dz"], STACK_OPTICS["dxy"], STACK_OPTICS["dxy"])
    x = nuclei_volume((24, 96, 96), voxel=voxel, seed=7)
    A = make_operator("blur", shape=x.shape, optics=STACK_OPTICS)
    photons = 300.0
    y = A.measure(x, photons=photons, seed=0)
    look = {"scale": voxel, "contrast_limits": [0.0, float(x.max())]}
    return [
        (x, {"name": "nuclei stack", "colormap": "gray", **look}, "image"),
        measurement_layer(
            y,
            A,
            "nuclei stack [widefield NA 1.2, Poisson]",
            photons=photons,
            modality="fluorescence",
            **look,
        ),
    ]
