"""Procedural training images for the bundled priors: fluorescence nuclei and brain MRI slices.

Everything here is generated from a seed (``numpy.random.default_rng``), with numpy, scipy and
scikit-image only; nothing is downloaded. The generators are vectorised over images (and, for
nuclei, over the nuclei of many images at once), so that tens of thousands of 64x64 patches take
seconds on a 2-core CPU.

- :func:`nuclei_images`: widefield/confocal images of DAPI/Hoechst-stained nuclei, in the style of
  the 2018 Data Science Bowl fluorescence images.
- :func:`brain_phantoms`: axial brain MRI slices (T1-, T2- or PD-weighted looking), whole heads
  at the requested shape, with a share of perturbed Shepp-Logan phantoms.
- :func:`brain_patches`: random patches of :func:`brain_phantoms` slices, background skipped.
- :func:`shepp_logan`: the modified Shepp-Logan phantom (Toft's table).

What is where (all four are imported from here, ``napari_genprior.synthetic``):

- ``nuclei.py``: :func:`nuclei_images` (placing, rendering and imaging the nuclei).
- ``brain.py``: :func:`brain_phantoms` and :func:`brain_patches` (head geometry, tissue
  contrasts, deep structures, composition); ``_sulci.py``: the cortical folds they draw.
- ``shepp.py``: :func:`shepp_logan` and the perturbed copies mixed into :func:`brain_phantoms`.
- ``_common.py``: helpers they share (argument checks, blurs, bilinear resampling, smooth noise
  fields, random crops of noise tiles, the pixel grid of a slice).
"""

from __future__ import annotations

from .brain import brain_patches, brain_phantoms
from .nuclei import nuclei_images
from .shepp import shepp_logan

__all__ = ["brain_patches", "brain_phantoms", "nuclei_images", "shepp_logan"]
