"""Make the files in sample_data/ (run once; the outputs are committed).

    pip download --no-deps stardist==0.9.2 -d /tmp/sd      # a wheel that carries img2d.tif
    python scripts/make_sample_data.py /tmp/sd/stardist-0.9.2-*.whl

The clean sample is a 128x128 crop of stardist's ``data/images/img2d.tif`` (fluorescence nuclei
from the 2018 Data Science Bowl, BBBC038); the degraded sample is made from it by the plugin's own
``inpaint`` operator, whose spec is stored in the TIFF so that it can be rebuilt exactly.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import tifffile

from napari_genprior import make_operator
from napari_genprior._io import write_tiff

OUT = Path(__file__).resolve().parents[1] / "sample_data"
CROP = (slice(256, 384), slice(128, 256))
INPAINT = {"kind": "inpaint", "fraction": 0.5, "seed": 0}
NOISE_STD, NOISE_SEED = 8.0, 1


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        img = tifffile.imread(io.BytesIO(zf.read("stardist/data/images/img2d.tif")))
    clean = np.ascontiguousarray(img[CROP]).astype(np.uint16)
    write_tiff(
        OUT / "nuclei.tif",
        clean,
        {"source": "stardist 0.9.2 data/images/img2d.tif", "crop": [[256, 384], [128, 256]]},
    )
    A = make_operator(
        INPAINT["kind"], shape=clean.shape, fraction=INPAINT["fraction"], seed=INPAINT["seed"]
    )
    y = A.measure(clean, noise_std=NOISE_STD, seed=NOISE_SEED)
    write_tiff(
        OUT / "nuclei_inpaint50.tif",
        y,
        {
            "operator": A.spec(),
            "noise_std": NOISE_STD,
            "noise_seed": NOISE_SEED,
            "clean": "nuclei.tif",
        },
    )
    print(f"wrote {OUT / 'nuclei.tif'} and {OUT / 'nuclei_inpaint50.tif'}")


if __name__ == "__main__":
    main(sys.argv[1])
