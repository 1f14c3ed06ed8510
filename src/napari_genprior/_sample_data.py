"""napari sample data: the files in ``sample_data/`` as layers.

The degraded sample's layer carries its operator spec in ``metadata["genprior"]`` so that the
Reconstruct widget rebuilds the operator without asking for parameters.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ._io import read_tiff

NUCLEI = "nuclei.tif"
NUCLEI_INPAINT = "nuclei_inpaint50.tif"


def sample_path(name: str) -> Path:
    """Path of a bundled sample file (they ship inside the package)."""
    path = Path(str(resources.files("napari_genprior") / "sample_data" / name))
    if not path.is_file():
        raise FileNotFoundError(f"bundled sample {name!r} is missing from the installation ({path}).")
    return path


def nuclei() -> list[tuple]:
    """The clean 128x128 fluorescence-nuclei crop."""
    data, meta = read_tiff(sample_path(NUCLEI))
    return [(data, {"name": "nuclei", "colormap": "gray", "metadata": {"source": meta}}, "image")]


def nuclei_inpaint() -> list[tuple]:
    """The clean nuclei and their measurement: 50% of the pixels missing, Gaussian noise."""
    y, meta = read_tiff(sample_path(NUCLEI_INPAINT))
    clean = nuclei()
    x = clean[0][0]
    return clean + [(y, {
        "name": "nuclei [50% pixels, noisy]", "colormap": "gray",
        "contrast_limits": [float(x.min()), float(x.max())],
        "metadata": {"genprior": {"operator": meta["operator"], "noise_std": meta["noise_std"],
                                  "role": "measurement"}},
    }, "image")]
