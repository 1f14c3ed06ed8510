"""A batch killed mid-run (kill -9: no clean-up code runs) leaves only complete outputs, and a
rerun finishes the rest, removes the debris and gives the bytes of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import napari_genprior as ngp
from napari_genprior._io import read_tiff, write_tiff

N_FILES = 8


def _batch(inp: Path, out: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "napari_genprior.cli",
        "batch",
        str(inp),
        "--out",
        str(out),
        "--operator",
        "blur",
        "--param",
        "sigma=2",
        "--method",
        "tv",
        "--steps",
        "150",
        "--scheduler",
        "sync",
        "--quiet",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_a_batch_killed_mid_run_leaves_only_complete_files_and_a_rerun_finishes(tmp_path, nuclei):
    inp, out, ref = tmp_path / "in", tmp_path / "out", tmp_path / "ref"
    A = ngp.make_operator("blur", shape=(48, 48), sigma=2.0)
    x = nuclei.astype(np.float32)
    for i in range(N_FILES):
        r, c = divmod(i, 4)
        write_tiff(
            inp / f"img{i}.tif",
            A.measure(x[16 * r : 16 * r + 48, 16 * c : 16 * c + 48], noise_std=40.0, seed=i),
        )
    # Debris of an earlier crash while writing img5's output: a temporary file, never an output.
    out.mkdir()
    debris = out / ".img5.tif.k3j9x.tmp"
    debris.write_bytes(b"II*\0 half a tiff")
    os.utime(debris, (time.time() - 60, time.time() - 60))

    proc = _batch(inp, out)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(list(out.glob("img*.tif"))) < 2:
        time.sleep(0.01)
    assert proc.poll() is None, "the batch finished before it could be killed; make it slower"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)

    finished = sorted(p.name for p in out.glob("img*.tif"))
    assert 2 <= len(finished) < N_FILES
    for name in finished:  # every file under an output's name is complete and readable
        data, meta = read_tiff(out / name)
        assert data.shape == (48, 48) and np.all(np.isfinite(data))
        assert meta["method"] == "tv"

    again = _batch(inp, out)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == [f"img{i}.tif" for i in range(N_FILES)], (
        "temporary files were left behind"
    )

    clean = _batch(inp, ref)  # the same batch, never interrupted
    assert clean.wait(300) == 0
    for i in range(N_FILES):
        a, b = read_tiff(out / f"img{i}.tif")[0], read_tiff(ref / f"img{i}.tif")[0]
        np.testing.assert_array_equal(a, b)
