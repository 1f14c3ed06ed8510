"""Small file and encoding helpers shared by the library, the CLI and the plugin.

- boolean masks as JSON-serialisable dicts (operator specs carry them),
- TIFF files written atomically (temporary file, then rename) with a JSON description.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

# The bundled sample files (``sample_data/``, shipped inside the package).
NUCLEI = "nuclei.tif"
NUCLEI_INPAINT = "nuclei_inpaint50.tif"
DIGITS = "digits_test.npz"


def sample_path(name: str) -> Path:
    """Path of a bundled sample file (they ship inside the package)."""
    from importlib import resources

    path = Path(str(resources.files("napari_genprior") / "sample_data" / name))
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled sample {name!r} is missing from the installation ({path})."
        )
    return path


def encode_mask(mask: np.ndarray) -> dict:
    """A boolean array as a JSON-serialisable dict (bit-packed, base64)."""
    mask = np.asarray(mask, dtype=bool)
    return {
        "shape": list(mask.shape),
        "packbits": base64.b64encode(np.packbits(mask.ravel()).tobytes()).decode("ascii"),
    }


def decode_mask(obj: dict) -> np.ndarray:
    """Inverse of :func:`encode_mask`; raises ValueError on a malformed dict."""
    try:
        shape = tuple(int(s) for s in obj["shape"])
        raw = np.frombuffer(base64.b64decode(obj["packbits"], validate=True), dtype=np.uint8)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"mask metadata is malformed ({exc}); expected {{'shape', 'packbits'}}."
        ) from exc
    n = int(np.prod(shape))
    bits = np.unpackbits(raw)
    if bits.size < n or bits.size - n >= 8:
        raise ValueError(f"mask metadata holds {bits.size} bits, which does not fit shape {shape}.")
    return bits[:n].astype(bool).reshape(shape)


#: An array up to this size (as float64 / complex128) travels inside a layer's metadata: a
#: k-space volume the reader opened, a measurement kept with its result (``ngp.rerun``).
EMBED_MAX_BYTES = 8 * 2**20


def encode_array(arr: np.ndarray, single: bool = False) -> dict:
    """A float or complex array (a PSF, a k-space) as a JSON-serialisable dict (base64), exactly
    (``single``: in single precision, half the size; coil maps are kept so)."""
    if single:
        key, dtype = ("complex64", "<c8") if np.iscomplexobj(arr) else ("float32", "<f4")
    else:
        key, dtype = ("complex128", "<c16") if np.iscomplexobj(arr) else ("float64", "<f8")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    return {"shape": list(arr.shape), key: base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_array(obj: dict) -> np.ndarray:
    """Inverse of :func:`encode_array`; raises ValueError on a malformed dict."""
    try:
        shape = tuple(int(s) for s in obj["shape"])
        key, dtype = next(
            (
                (k, d)
                for k, d in (("complex128", "<c16"), ("complex64", "<c8"), ("float32", "<f4"))
                if k in obj
            ),
            ("float64", "<f8"),
        )
        raw = base64.b64decode(obj[key], validate=True)
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"array metadata is malformed ({exc}); expected {{'shape', 'float64'}} "
            "or {'shape', 'complex128'}."
        ) from exc


def write_tiff(
    path: str | os.PathLike, data: np.ndarray, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``data`` to a TIFF atomically, with ``metadata`` as JSON in the image description.

    The file appears under its final name only once it is complete, so an interrupted run never
    leaves a half-written output behind; a failed write leaves no temporary file either.

    Raises
    ------
    OSError
        The file cannot be written, in one sentence naming it (a full disk says so); an existing
        file of that name is left as it was.
    """
    import tifffile

    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        # tifffile's "shaped" JSON description; our dict travels as one JSON string in it.
        arr = np.asarray(data)
        # minisblack: a stack of 3 or 4 planes is planes, not RGB(A)
        tifffile.imwrite(
            tmp,
            arr,
            photometric="minisblack" if arr.ndim >= 3 else None,
            metadata={"genprior": json.dumps(metadata or {})},
        )
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        error = write_error(path, exc)
        if error is None:
            raise
        raise error from exc
    return path


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says that the disk (or the user's quota) is full.

    Besides ``ENOSPC`` / ``EDQUOT``, numpy's short writes (``"65536 requested and 16312
    written"``, as tifffile writes) and safetensors' errors (Rust's "os error 28") count."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return (
        "No space left" in text
        or "os error 28" in text
        or "quota exceeded" in text.lower()
        or re.fullmatch(r"\d+ requested and \d+ written", text) is not None
    )


def write_error(path: str | os.PathLike, exc: BaseException) -> OSError | None:
    """The error to raise when writing ``path`` failed with ``exc``: the same kind of OSError
    with one sentence naming ``path`` (not a temporary file); None when ``exc`` is not about
    the file (a KeyboardInterrupt, a bad argument), to be raised as it is."""
    if disk_full(exc):
        reason = "the disk is full (No space left on device); free some space or write elsewhere"
        error = OSError(f"cannot write {str(path)!r}: {reason}.")
        error.errno = errno.ENOSPC  # the message stays the sentence above
        return error
    if not isinstance(exc, OSError):
        return None
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    message = f"cannot write {str(path)!r}: {reason.rstrip('.')}."
    try:
        error = type(exc)(message)  # PermissionError stays one
    except Exception:  # noqa: BLE001 - a subclass with other arguments
        error = OSError(message)
    error.errno = exc.errno
    return error


def remove_stale_temporaries(paths: Iterable[str | os.PathLike], before: float) -> int:
    """Delete what :func:`write_tiff` left for ``paths`` when its process was killed mid-write.

    Those are its temporary files (``.<name>.<random>.tmp`` beside each path) last modified
    before the time ``before``; each folder is listed once. Returns how many were removed.
    """
    names: dict[Path, set[str]] = {}
    for p in map(Path, paths):
        names.setdefault(p.parent, set()).add(p.name)
    removed = 0
    for folder, targets in names.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:  # no folder yet: nothing left behind
            continue
        for entry in entries:
            name = entry.name  # mkstemp's random part has no dots
            if (
                not (name.startswith(".") and name.endswith(".tmp"))
                or name[1:].rsplit(".", 2)[0] not in targets
            ):
                continue
            try:
                if entry.stat().st_mtime < before:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:  # already gone, or not ours to remove
                pass
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_tiff(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a TIFF and the ``genprior`` metadata :func:`write_tiff` stored in it (``{}`` if none)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        shaped = tif.shaped_metadata or ({},)
    meta: dict[str, Any] = {}
    raw = shaped[0].get("genprior") if isinstance(shaped[0], dict) else None
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            meta = parsed
    return data, meta
