"""napari dock widgets: thin wrappers around :mod:`napari_genprior.api` (no maths here)."""
