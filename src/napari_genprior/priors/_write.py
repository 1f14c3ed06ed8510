"""Writing a prior file: safetensors weights with the card in their header, and a JSON card beside.

The bottom of :mod:`napari_genprior.priors`: it knows nothing of the architectures (a prior is
anything with ``card`` and ``state_dict()``), so :mod:`.generators` (``Generator.save``) and
:mod:`.io` (loading, which needs the architectures) both build on it and neither imports the other
back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: The key of the card in the safetensors header metadata.
CARD_KEY = "genprior_card"


def save_prior(G: Any, path: str | os.PathLike) -> Path:
    """Write ``G`` to ``path`` (``.safetensors`` added if missing) and its card to ``.json``.

    Both files are written to temporary files first and renamed once both are complete, so a
    failed or interrupted save leaves no partial file (and an earlier prior of that name whole).

    Raises
    ------
    OSError
        A file cannot be written, in one sentence naming it (a full disk says so).
    """
    from safetensors.torch import save_file

    from .._io import _umask, write_error
    from .._version import __version__

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    card = {**G.card, "genprior_version": __version__}
    tensors = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    card_path = path.with_suffix(".json")
    tmp, card_tmp = (p.with_name(f".{p.name}.tmp") for p in (path, card_path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata={CARD_KEY: json.dumps(card)})
        card_tmp.write_text(json.dumps(card, indent=1) + "\n")
        mask = _umask()
        for p in (tmp, card_tmp):
            os.chmod(p, 0o666 & ~mask)
        os.replace(tmp, path)
        os.replace(card_tmp, card_path)
    except BaseException as exc:
        for p in (tmp, card_tmp):
            p.unlink(missing_ok=True)
        error = write_error(path, exc)
        if error is None:
            raise
        raise error from exc
    return path
