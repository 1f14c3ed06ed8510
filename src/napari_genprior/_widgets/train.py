"""The Train prior dock widget.

It trains a generative prior (a VAE or a DCGAN) on patches of the chosen image layers with
:func:`napari_genprior.api.iter_train` in a ``thread_worker``: a napari progress bar over the
epochs, a live loss curve, and ONE layer of decoded samples (a 2 x 4 mosaic) updated in place each
epoch and kept at the end, so that the user sees what the prior makes. Cancel sends False into the
training generator, which stops after the current epoch and returns the model trained so far.
The trained prior is registered in :data:`~napari_genprior._widgets._session.SESSION_PRIORS`
(so that the Reconstruct widget lists it) and can be saved to a ``.safetensors`` file. The input
layers are never written to.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Image
from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning

from ._dock import mark, wrapping_label
from ._layers import in_viewer
from ._plot import CurvePlot, image_layer_select
from ._runs import RunControls
from ._session import SESSION_PRIORS
from ._worker import warm_up

if TYPE_CHECKING:  # pragma: no cover
    import napari

PATCH_SIZES = (8, 16, 32, 64, 128, 256)
"""Square patch sides the generators accept: 4 * 2**k (VAE: fully connected up to 16, conv from 32)."""
MOSAIC_COLUMNS = 4


class TrainWidget(RunControls, Container):
    """Train a generative prior on image layers and add it to this session's priors."""

    _already_running = "Training is already running; cancel it first."
    _cancelling = "cancelling after this epoch..."
    _failure = "Training failed"

    def __init__(self, viewer: napari.viewer.Viewer):
        from ..devices import available_devices

        self._viewer = viewer
        self.images = image_layer_select(
            viewer,
            "images",
            "The image layers to train on (ctrl/shift-click for several). A stack's planes are "
            "separate images. They are never modified.",
        )
        self.patch_size = ComboBox(
            label="patch size",
            choices=list(PATCH_SIZES),
            value=64,
            tooltip="Side of the square patches the prior learns and later makes, in pixels. "
            "Every image must be at least this large; reconstruct images of this size "
            "(or larger ones as a mosaic of patches).",
        )
        self.kind = ComboBox(
            label="kind",
            choices=["vae", "gan", "score"],
            value="vae",
            tooltip="vae: a variational autoencoder (stable, the default). "
            "gan: a DCGAN (sharper samples, harder to train). "
            "score: a diffusion prior (a denoiser of any noise level) for method 'score'; "
            "it has no latent code and reconstructs images of any size.",
        )
        self.noisy = CheckBox(
            text="my images are noisy",
            value=False,
            tooltip="The images are noisy measurements (photon counts, camera noise) and no "
            "clean images exist: learn a score prior from them alone, by splitting each "
            "measurement's photons into two independent halves (Noise2Noise), with the noise "
            "the camera fit finds (kind becomes 'score'). Its loss curve shows a held-out "
            "PSNR: how close the denoised held-out patches are to the clean ones, as "
            "estimated from the noise.",
        )
        self.blurred_by = FloatSpinBox(
            label="blurred by (sigma)",
            value=0.0,
            min=0.0,
            max=20.0,
            step=0.1,
            enabled=False,
            tooltip="With 'my images are noisy': the images are also blurred, by a Gaussian "
            "PSF of this sigma in pixels (0: not blurred). The prior learns them as recorded, "
            "through the blur; method 'score' then denoises a measurement under it and "
            "deconvolves that blur.",
        )
        self.latent_dim = SpinBox(
            label="latent dim",
            value=32,
            min=1,
            max=1024,
            tooltip="Size of the latent code z: larger fits more detail, "
            "smaller constrains reconstructions more.",
        )
        self.epochs = SpinBox(
            label="epochs",
            value=20,
            min=1,
            max=100_000,
            tooltip="Passes of training; each draws 'patches per epoch' random patches.",
        )
        self.patches_per_epoch = SpinBox(
            label="patches per epoch",
            value=2000,
            min=8,
            max=1_000_000,
            step=500,
            tooltip="Random patches (with flips and rotations) drawn from the images per epoch.",
        )
        self.seed = SpinBox(
            label="seed",
            value=0,
            min=0,
            max=2**31 - 1,
            tooltip="Same seed, same prior (on the same device).",
        )
        self.device = ComboBox(
            label="device",
            choices=["auto", *available_devices()],
            value="auto",
            tooltip="auto: CUDA if present, else Apple MPS, else CPU.",
        )
        self.prior_name = LineEdit(
            label="name",
            value="my-prior",
            tooltip="The name the prior gets in the Reconstruct widget's "
            "prior list (made unique if taken).",
        )
        self.train_button = PushButton(text="Train", tooltip="Start training.")
        self.cancel_button = PushButton(
            text="Cancel",
            enabled=False,
            tooltip="Stop after the current epoch and keep the prior trained so far.",
        )
        self.save_button = PushButton(
            text="Save...",
            enabled=False,
            tooltip="Write the last trained prior to a .safetensors "
            "file (with its card), for load_prior(path).",
        )
        self.status = wrapping_label(value="")
        super().__init__(
            widgets=[
                self.images,
                self.patch_size,
                self.kind,
                self.noisy,
                self.blurred_by,
                self.latent_dim,
                self.epochs,
                self.patches_per_epoch,
                self.seed,
                self.device,
                self.prior_name,
                self.train_button,
                self.cancel_button,
                self.save_button,
                self.status,
            ]
        )
        mark(self)  # tabbed with the plugin's other docked widgets
        self.loss_plot = CurvePlot(title="training loss", xlabel="epoch", ylabel="loss")
        self.loss_plot.setToolTip("Mean loss per epoch (log scale).")
        self.native.layout().addWidget(self.loss_plot)
        self._start_button = self.train_button
        self.trained: Any = None
        """The last trained prior (a :class:`~napari_genprior.priors.Generator`), or None."""
        self.trained_name: str | None = None
        self.losses: dict[str, list[float]] = {}
        """Mean loss per epoch of the current (or last) run, by loss name."""
        self.preview: Image | None = None
        """The layer of decoded samples of the current (or last) run."""
        self._pbar: progress | None = None
        self.noisy.changed.connect(self._on_noisy)
        self.train_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        self.save_button.changed.connect(self._save_dialog)
        warm_up()

    # -- inputs ------------------------------------------------------------------------------
    def _on_noisy(self, noisy: bool) -> None:
        """Noisy images train a score prior: the kind follows, and the latent does not apply."""
        if noisy:
            self.kind.value = "score"
        self.kind.enabled = not noisy
        self.latent_dim.enabled = not noisy
        self.blurred_by.enabled = noisy

    def _training_images(self, layers: list[Image], patch: int) -> list[np.ndarray]:
        """The 2D planes of ``layers`` (read, never copied into the layers), checked.

        Raises
        ------
        ValueError
            Naming the layer that is RGB, multiscale, not an image, too small or not finite.
        """
        planes: list[np.ndarray] = []
        for layer in layers:
            if layer.multiscale or layer.rgb:
                raise ValueError(
                    f"layer {layer.name!r} is "
                    f"{'multiscale' if layer.multiscale else 'RGB'}; training needs "
                    "single-scale grey images."
                )
            data = np.asarray(layer.data)
            if data.ndim < 2:
                raise ValueError(
                    f"layer {layer.name!r} has shape {data.shape}; it is not an image."
                )
            if min(data.shape[-2:]) < patch:
                raise ValueError(
                    f"layer {layer.name!r} has {data.shape[-2]}x{data.shape[-1]} "
                    f"images, smaller than the {patch}x{patch} patch size; choose "
                    "a smaller patch size."
                )
            if np.issubdtype(data.dtype, np.number) and not np.all(np.isfinite(data)):
                raise ValueError(
                    f"layer {layer.name!r} contains NaN or infinite values; "
                    "replace them before training."
                )
            planes.extend(data.reshape(-1, *data.shape[-2:]))
        return planes

    # -- running -----------------------------------------------------------------------------
    def start(self) -> None:
        """Check the inputs and start training in a worker thread."""
        from ..api import iter_train

        if self._refuse_while_running():
            return
        layers = list(self.images.value)
        if not layers:
            show_warning("Pick one or more image layers to train on.")
            return
        names = ", ".join(repr(layer.name) for layer in layers)
        patch = int(self.patch_size.value)
        per_epoch = int(self.patches_per_epoch.value)
        try:
            planes = self._training_images(layers, patch)
            blur = None
            if self.noisy.value and self.blurred_by.value > 0:
                from ..api import make_operator

                blur = make_operator("blur", shape=planes[0].shape, sigma=self.blurred_by.value)
            run = iter_train(
                planes,
                kind="score" if self.noisy.value else self.kind.value,
                noisy=bool(self.noisy.value),
                operator=blur,
                latent_dim=self.latent_dim.value,
                epochs=self.epochs.value,
                device=self.device.value,
                seed=self.seed.value,
                patch_size=patch,
                patches_per_epoch=per_epoch,
                batch_size=min(64, per_epoch),
                data=f"napari layers {names}",
            )
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot train on {names}: {exc}")
            return
        self._name = self.prior_name.value.strip() or "my-prior"
        self.losses = {}
        self.loss_plot.plot({})
        self.preview = None
        self._pbar = progress(total=self.epochs.value, desc=f"genprior train {self._name}")
        self._start_worker(run, "starting...", self._pbar)

    def _notify(self, level: str, message: str) -> None:
        # this module's functions, looked up when called (tests patch them here)
        {"warning": show_warning, "error": show_error}[level](message)

    def save(self, path: str | Path) -> Path | None:
        """Write the last trained prior to ``path`` (``.safetensors`` added if missing).

        Returns
        -------
        Path or None
            The file written, or None (with a notification) when there is nothing to save or
            the file cannot be written.
        """
        if self.trained is None:
            show_warning("Nothing to save yet: train a prior first.")
            return None
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        try:
            self.trained.save(path)
        except OSError as exc:
            show_error(f"Cannot save the prior to {str(path)!r}: {exc}")
            return None
        show_info(f"Saved prior {self.trained_name!r} to {path}")
        return path

    def _save_dialog(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(
            self.native,
            "Save the trained prior",
            f"{self.trained_name or 'prior'}.safetensors",
            "Priors (*.safetensors)",
        )
        if path:
            self.save(path)

    # -- worker callbacks (main thread) ------------------------------------------------------
    def _on_update(self, u) -> None:
        # napari's progress bar and add_image call processEvents(), so later updates and even
        # the end of the run can be handled re-entrantly inside this method: the losses are
        # recorded first (nothing there processes events), the progress bar is updated last.
        if self.worker is None:
            return
        for key, value in u.losses.items():
            self.losses.setdefault(key, []).append(value)
        self._latest = u
        if getattr(self, "_in_update", False):
            # re-entered from the events that add_image or the progress bar process: the
            # outer call shows the state; nesting a call per queued update (after the viewer
            # was closed, every one of them adds a layer) exhausted the recursion limit
            return
        self._in_update = True
        try:
            self._show(u)
            latest = self._latest
            if latest is not u:  # updates arrived while u was being shown
                self.loss_plot.plot(self.losses)
                if self.worker is not None:
                    self._progress(latest)
        finally:
            self._in_update = False

    def _show(self, u) -> None:
        """The plot, the samples preview, the status and the progress bar of update ``u``."""
        self.loss_plot.plot(self.losses)
        if u.samples is not None:
            tiles = _mosaic(u.samples)
            if in_viewer(self._viewer, self.preview):
                self.preview.data = tiles
            else:
                # kept when the run ends, even if it ends while the layer is being added
                self.preview = self._viewer.add_image(
                    tiles,
                    name=f"{self._name} [samples]",
                    colormap="gray",
                    contrast_limits=(0.0, 1.0),
                    metadata={"genprior": {"role": "prior samples", "prior": self._name}},
                )
                if self.worker is None:
                    return
        self._progress(u)

    def _progress(self, u) -> None:
        """The status line and the progress bar at update ``u``."""
        loss = u.losses.get("loss", next(iter(u.losses.values()), float("nan")))
        held = u.losses.get("held-out PSNR")
        held_text = "" if held is None else f"  held-out PSNR {held:.1f} dB"
        self.status.value = (
            f"epoch {u.epoch}/{u.total}  loss {loss:.4g}{held_text}  ({u.seconds:.0f} s)"
        )
        if self._pbar is not None:
            self._pbar.update(max(0, u.epoch - self._pbar.n))

    def _on_done(self, G) -> None:
        name = SESSION_PRIORS.add(self._name, G)
        G.card["name"] = name
        self.trained, self.trained_name = G, name
        self.save_button.enabled = True
        if in_viewer(self._viewer, self.preview):
            self.preview.metadata["genprior"]["prior"] = name
        info = G.card.get("training", {})
        epochs, seconds = info.get("epochs", 0), info.get("seconds", 0.0)
        if info.get("cancelled"):
            msg = (
                f"prior {name!r}: cancelled after epoch {epochs}; kept the prior trained so "
                f"far ({seconds:.1f} s)"
            )
        else:
            msg = f"prior {name!r}: trained {epochs} epochs in {seconds:.1f} s"
        held = info.get("final_losses", {}).get("held-out PSNR")
        if held is not None:  # learned from noisy images: how well it denoises held-out ones
            msg += f"; held-out PSNR {held:.1f} dB"
        self.status.value = msg
        show_info(f"{msg}; it is now in the Reconstruct widget's prior list.")

    def _on_finished(self) -> None:
        self._pbar = None  # closed by the worker (make_worker)
        super()._on_finished()


def _mosaic(samples: np.ndarray, columns: int = MOSAIC_COLUMNS) -> np.ndarray:
    """Tile ``(N, h, w)`` samples into one image of ``ceil(N / columns)`` rows (blank padded)."""
    n, h, w = samples.shape
    rows = -(-n // columns)
    tiles = np.zeros((rows * columns, h, w), dtype=np.float32)
    tiles[:n] = samples
    return tiles.reshape(rows, columns, h, w).transpose(0, 2, 1, 3).reshape(rows * h, columns * w)
