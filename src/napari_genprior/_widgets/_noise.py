"""Simulate's noise controls: Gaussian noise, photon counts, a background and a camera."""

from __future__ import annotations

from magicgui.widgets import CheckBox, FloatSpinBox

#: The camera Simulate records with when asked (a typical sCMOS: ADU, ADU per electron, e- rms).
CAMERA = {"offset": 100.0, "gain": 2.0, "read_noise": 1.5}


class NoiseControls:
    """The controls of the noise a measurement is simulated with (``Operator.measure``'s
    ``noise_std``, ``photons``, ``background`` and ``camera``)."""

    def __init__(self) -> None:
        self.noise_std = FloatSpinBox(
            label="noise std",
            value=0.0,
            min=0.0,
            max=1e12,
            step=0.001,
            tooltip="Standard deviation of additive Gaussian noise, in "
            "the units of the measurement (the image's units "
            "for denoise, inpaint, blur and downsample).",
        )
        self.photons = FloatSpinBox(
            label="photons (0 = off)",
            value=0.0,
            min=0.0,
            max=1e12,
            step=10.0,
            tooltip="Poisson (shot) noise: the brightest "
            "measured value gets this many expected "
            "photons. 0 turns it off.",
        )
        # a microscope's camera: ADU with an offset and a gain, and a background
        self.camera = CheckBox(
            text=f"camera ADU (offset {CAMERA['offset']:g}, gain {CAMERA['gain']:g}, "
            f"read noise {CAMERA['read_noise']:g} e-)",
            value=False,
            tooltip="Record the photon counts as a scientific camera does: offset + gain x "
            "(counts + read noise), rounded, in ADU, as a microscope's uint16 image is; "
            "needs photons. Reconstruct fits the camera from the noise by itself.",
        )
        self.background = FloatSpinBox(
            label="background",
            value=0.0,
            min=0.0,
            max=1e12,
            step=0.01,
            tooltip="Light added everywhere before the noise (out-of-focus haze, "
            "autofluorescence), in the clean image's units.",
        )
