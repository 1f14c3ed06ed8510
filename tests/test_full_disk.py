"""A full disk: a prior file, a measurement file and a batch's outputs fail with a sentence that
names the file and says the disk is full, and leave no partial or temporary file behind.

Each case runs with a patched write that fails as a full disk does, and then (where this machine
lets the tests mount one: root, Linux) on a real 64 KiB tmpfs."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import napari_genprior as ngp
from napari_genprior import cli
from napari_genprior._io import read_tiff, write_tiff
from napari_genprior.priors import load_prior, save_prior


def _half_then(error: BaseException, where: int = 0):
    """A stand-in for a writer whose argument ``where`` is the file: writes a few bytes of the
    file, then raises ``error``."""

    def write(*args, **kwargs):
        Path(args[where]).write_bytes(b"II*\x00 half a file")
        raise error

    return write


FULL = [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError("65536 requested and 16312 written"),
]  # numpy's short write, as on a real disk


def _says_full(exc: BaseException, path: Path) -> None:
    text = str(exc)
    assert repr(str(path)) in text and "disk is full" in text and "No space left" in text, text
    assert isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    assert "\n" not in text and ".tmp" not in text  # one sentence, about the file asked for


def _measurement():
    A = ngp.make_operator("inpaint", shape=(32, 32), fraction=0.5, seed=0)
    x = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    return A.measure(x, noise_std=0.01, seed=0), {"operator": A.spec()}


@pytest.mark.parametrize("error", FULL, ids=["ENOSPC", "short-write"])
def test_a_measurement_file_on_a_full_disk(tmp_path, monkeypatch, error):
    import tifffile

    y, meta = _measurement()
    path = tmp_path / "measured.tif"
    write_tiff(path, y, meta)
    before = path.read_bytes()
    monkeypatch.setattr(tifffile, "imwrite", _half_then(error))
    with pytest.raises(OSError) as info:
        write_tiff(path, 2 * y, meta)  # writing over an earlier measurement
    _says_full(info.value, path)
    assert os.listdir(tmp_path) == ["measured.tif"] and path.read_bytes() == before
    with pytest.raises(OSError) as info:
        write_tiff(tmp_path / "new" / "other.tif", y, meta)
    _says_full(info.value, tmp_path / "new" / "other.tif")
    assert os.listdir(tmp_path / "new") == []


def test_other_write_errors_name_the_file_and_interrupts_pass_through(tmp_path, monkeypatch):
    import tifffile

    y, meta = _measurement()
    monkeypatch.setattr(
        tifffile,
        "imwrite",
        _half_then(PermissionError(13, "Permission denied", "/x/.a.tif.k3.tmp")),
    )
    with pytest.raises(PermissionError, match="cannot write .*a.tif': Permission denied") as info:
        write_tiff(tmp_path / "a.tif", y, meta)
    assert info.value.errno == errno.EACCES and ".tmp" not in str(info.value)
    monkeypatch.setattr(tifffile, "imwrite", _half_then(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_tiff(tmp_path / "a.tif", y, meta)
    assert os.listdir(tmp_path) == []


def test_a_prior_file_on_a_full_disk(tmp_path, monkeypatch):
    import safetensors.torch

    G = ngp.random_prior(seed=1)
    path = save_prior(ngp.random_prior(seed=0), tmp_path / "prior")  # an earlier prior
    assert path == tmp_path / "prior.safetensors"
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["prior.json", "prior.safetensors"]
    real = safetensors.torch.save_file

    # safetensors (Rust) says so in its own words, as on the tmpfs below
    monkeypatch.setattr(
        safetensors.torch,
        "save_file",
        _half_then(
            Exception("Error while serializing: I/O error: No space left on device (os error 28)"),
            1,
        ),
    )
    with pytest.raises(OSError) as info:
        save_prior(G, tmp_path / "prior")
    _says_full(info.value, path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    # the weights fit, the card beside them does not: neither is kept
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    real_write_text = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.endswith(".json.tmp"):
            real_write_text(self, '{"archi')
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(OSError) as info:
        save_prior(G, tmp_path / "prior")
    _says_full(info.value, path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert load_prior(path).card["config"]["seed"] == 0  # the earlier prior, whole


def _inputs(folder: Path, sizes: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for name, n in sizes.items():
        write_tiff(folder / f"{name}.tif", rng.random((n, n)).astype(np.float32))


def _batch(inp: Path, out: Path) -> list[str]:
    return [
        "batch",
        str(inp),
        "--out",
        str(out),
        "--operator",
        "denoise",
        "--method",
        "adjoint",
        "--scheduler",
        "sync",
        "--quiet",
    ]


def test_a_batch_on_a_full_disk(tmp_path, monkeypatch, capsys):
    import tifffile

    _inputs(tmp_path / "in", {"a": 16, "b": 16})
    out = tmp_path / "out"
    full = _half_then(OSError(errno.ENOSPC, "No space left on device"))
    imwrites = []

    def imwrite(*args, **kwargs):
        imwrites.append(args[0])
        return full(*args, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", imwrite)
    rc = cli.main(_batch(tmp_path / "in", out))
    text = capsys.readouterr()
    # the first full-disk write stops the batch: the other file is not reconstructed in vain
    assert rc == 2 and "Traceback" not in text.out + text.err
    assert f"cannot write {str(out / 'a.tif')!r}: the disk is full" in text.err
    assert "The batch stopped there" in text.err and "run the same command again" in text.err
    assert len(imwrites) == 1, "nothing more is attempted"
    assert os.listdir(out) == []
    monkeypatch.undo()  # space freed: the same command does both
    assert cli.main(_batch(tmp_path / "in", out)) == 0
    assert sorted(os.listdir(out)) == ["a.tif", "b.tif"]


# -- a real full disk ----------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs mounted for the test (skipped where mounting is not allowed)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_real_full_disk(tmp_path, tiny_disk, capsys):
    with pytest.raises(OSError) as info:  # 256 KiB of pixels on a 64 KiB disk
        write_tiff(tiny_disk / "measured.tif", np.zeros((256, 256), np.float32))
    _says_full(info.value, tiny_disk / "measured.tif")
    assert os.listdir(tiny_disk) == []

    with pytest.raises(OSError) as info:  # about 600 KiB of weights
        save_prior(ngp.random_prior(), tiny_disk / "prior.safetensors")
    _says_full(info.value, tiny_disk / "prior.safetensors")
    assert os.listdir(tiny_disk) == []

    # a batch whose first output fits and whose second does not
    _inputs(tmp_path / "in", {"a": 32, "b": 160})
    rc = cli.main(_batch(tmp_path / "in", tiny_disk))
    text = capsys.readouterr()
    assert rc == 2 and "Traceback" not in text.out + text.err
    assert f"cannot write {str(tiny_disk / 'b.tif')!r}: the disk is full" in text.err
    assert os.listdir(tiny_disk) == ["a.tif"]
    assert read_tiff(tiny_disk / "a.tif")[0].shape == (32, 32)
