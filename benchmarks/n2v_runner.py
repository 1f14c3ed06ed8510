"""Noise2Void (CAREamics) on one noisy 2D image, in CAREamics' own environment.

CAREamics pins numpy, zarr and scikit-image below what napari-genprior uses, so it lives in a
separate virtual environment and ``bench self-supervised`` runs this script with that
environment's Python (``GENPRIOR_N2V_PYTHON``; ``benchmarks/README.md`` says how to make it)::

    python n2v_runner.py noisy.npy denoised.npy EPOCHS STEPS SEED

It trains N2V (CAREamics' defaults: a 2-level U-Net, 64x64 patches, flips and rotations) on
the image itself and writes the prediction; the time taken goes to stdout as JSON.
"""

import json
import sys
import tempfile
import time

import numpy as np


def main() -> None:
    src, dst, epochs, steps, seed = sys.argv[1:6]
    import torch
    from careamics import CAREamist
    from careamics.config import create_n2v_config

    torch.manual_seed(int(seed))
    torch.set_num_threads(int(sys.argv[6]) if len(sys.argv) > 6 else 2)
    y = np.load(src).astype(np.float32)
    t0 = time.perf_counter()
    cfg = create_n2v_config(
        experiment_name="n2v",
        data_type="array",
        axes="YX",
        patch_size=[64, 64],
        batch_size=32,
        num_epochs=int(epochs),
        num_steps=int(steps),
    )
    with tempfile.TemporaryDirectory() as work:
        model = CAREamist(cfg, work_dir=work, enable_progress_bar=False)
        model.train(train_data=y)
        pred = model.predict(y, tile_size=(128, 128), tile_overlap=(48, 48), axes="YX")
    out = np.asarray(pred[0] if isinstance(pred, (list, tuple)) else pred).squeeze()
    np.save(dst, out.astype(np.float32))
    print(json.dumps({"seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
