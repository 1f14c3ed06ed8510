"""Make the README's screenshots: each widget in use, in a real napari window (run under Xvfb).

    xvfb-run -a python scripts/make_screenshot.py [--steps N] [--only demo simulate ...]

- ``docs/screenshot.png``: ``napari-genprior demo --run``: clean nuclei, the measurement (50% of
  pixels missing, noise), the result of the recommended method (``tv``); Reconstruct and Compare
  docked.
- ``docs/simulate.png``: Simulate on the MRI sample's phantom: 4x variable-density k-space
  (log-magnitude) and the zero-filled image.
- ``docs/reconstruct-mri.png``: Reconstruct with ``tv`` on the MRI sample's k-space layer.
- ``docs/reconstruct-check.png``: Reconstruct on the nuclei with missing pixels with ``mri-vae``
  chosen: the recommended settings shown, and the prior check stopping the run with its reason
  (the layer records fluorescence nuclei) and the prior trained on such images.
- ``docs/train.png``: Train prior on the nuclei sample: loss curve and decoded samples.
- ``docs/deconv-3d.png``: Reconstruct on the ``nuclei-stack`` sample's widefield image as a
  plain stack: the PSF from the microscope optics, the voxel size from the layer's scale,
  Richardson-Lucy on the whole volume (middle plane shown).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch  # before Qt (a known torch/PyQt clash)

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _settle(app, widget=None, n: int = 30) -> None:
    while widget is not None and widget.worker is not None:
        app.processEvents()
        time.sleep(0.02)
    for _ in range(n):
        app.processEvents()
        time.sleep(0.01)


def _grid(viewer, app) -> None:
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid  # napari >= 0.9
    grid.enabled = True
    grid.shape = (1, len(viewer.layers))
    viewer.reset_view()
    _settle(app)


def _shoot(viewer, app, name: str) -> None:
    _settle(app)
    viewer.screenshot(str(DOCS / name), canvas_only=False, flash=False)
    print(f"wrote docs/{name}: {', '.join(layer.name for layer in viewer.layers)}")
    viewer.close()


def demo(app, steps: int) -> None:
    from napari_genprior._widgets.demo import open_demo

    viewer, widget, _ = open_demo(steps=steps, run=True)
    viewer.window._qt_window.resize(1600, 820)
    _settle(app, widget)
    _grid(viewer, app)
    _shoot(viewer, app, "screenshot.png")


def simulate(app, steps: int) -> None:
    import napari

    viewer = napari.Viewer(title="napari-genprior: Simulate")
    viewer.window._qt_window.resize(1500, 760)
    viewer.open_sample("napari-genprior", "mri-phantom")
    viewer.layers.remove("brain phantom [mri 4x k-space]")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Simulate")
    widget.layer.value = viewer.layers["brain phantom"]
    widget.kind.value = "mri"
    widget.mri_mask.value = "variable-density"
    widget.noise_std.value = 0.005
    widget.simulate()
    _grid(viewer, app)
    _shoot(viewer, app, "simulate.png")


def reconstruct_mri(app, steps: int) -> None:
    import napari

    viewer = napari.Viewer(title="napari-genprior: Reconstruct (MRI)")
    viewer.window._qt_window.resize(1500, 760)
    viewer.open_sample("napari-genprior", "mri-phantom")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    widget.layer.value = viewer.layers["brain phantom [mri 4x k-space]"]
    widget.confirm_seconds = None
    widget.start()
    _settle(app, widget)
    _grid(viewer, app)
    _shoot(viewer, app, "reconstruct-mri.png")


def reconstruct_check(app, steps: int) -> None:
    import napari

    viewer = napari.Viewer(title="napari-genprior: Reconstruct (prior check)")
    viewer.window._qt_window.resize(1500, 860)
    viewer.open_sample("napari-genprior", "nuclei-inpaint")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    widget.prior.value = "mri-vae"
    widget.start()
    _settle(app, widget)
    _grid(viewer, app)
    _shoot(viewer, app, "reconstruct-check.png")


def train(app, steps: int) -> None:
    import napari

    viewer = napari.Viewer(title="napari-genprior: Train prior")
    viewer.window._qt_window.resize(1500, 820)
    viewer.open_sample("napari-genprior", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Train prior")
    widget.images.value = [viewer.layers["nuclei"]]
    widget.patch_size.value = 32
    widget.latent_dim.value = 16
    widget.epochs.value = 8
    widget.patches_per_epoch.value = 1000
    widget.prior_name.value = "nuclei-32"
    widget.start()
    _settle(app, widget)
    _grid(viewer, app)
    _shoot(viewer, app, "train.png")


def deconv_3d(app, steps: int) -> None:
    import napari

    from napari_genprior._widgets._psf import OPTICS
    from napari_genprior._widgets.reconstruct import DEBLUR

    viewer = napari.Viewer(title="napari-genprior: 3D deconvolution")
    viewer.window._qt_window.resize(1500, 900)
    viewer.open_sample("napari-genprior", "nuclei-stack")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    widget.layer.value = viewer.layers["nuclei stack [widefield NA 1.2, Poisson]"]
    widget.operator.value = DEBLUR  # as for a stack from a microscope: no metadata
    widget.psf.source.value = OPTICS
    widget.confirm_seconds = None
    widget.start()
    _settle(app, widget)
    viewer.dims.set_point(0, viewer.dims.range[0].start + 12 * 0.25)
    _grid(viewer, app)
    _shoot(viewer, app, "deconv-3d.png")


SCENES = {
    "demo": demo,
    "simulate": simulate,
    "reconstruct-mri": reconstruct_mri,
    "reconstruct-check": reconstruct_check,
    "train": train,
    "deconv-3d": deconv_3d,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="the demo's max steps (default: the method's)"
    )
    parser.add_argument("--only", nargs="+", choices=list(SCENES), default=list(SCENES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    import napari  # noqa: F401  (creates the Qt application on first viewer)
    from qtpy.QtWidgets import QApplication

    DOCS.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        SCENES[name](QApplication.instance() or napari.qt.get_qapp(), args.steps)


if __name__ == "__main__":
    main()
