"""Batches of TIFF files (napari_genprior.batch and `napari-genprior batch`)."""

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
from napari_genprior._layerdata import measurement_layer
from napari_genprior.batch import DiskFull, Job, default_workers, plan_batch, run_batch
from napari_genprior.metrics import psnr

SIGMA, NOISE = 2.0, 40.0  # the nuclei sample is uint16 with a range of about 2000
FAST = {"steps": 40}


@pytest.fixture(scope="module")
def cleans(nuclei) -> dict[str, np.ndarray]:
    """Clean 32x32 images (and a 3-plane stack) cut from the nuclei sample."""
    x = nuclei.astype(np.float32)
    return {
        "a": x[40:72, 40:72],
        "b": x[70:102, 20:52],
        "stack": np.stack([x[10:42, 60:92], x[60:92, 60:92], x[90:122, 30:62]]),
    }


def _blurred(cleans: dict[str, np.ndarray], folder: Path) -> dict[str, np.ndarray]:
    """Write each clean image blurred (sigma 2) and noisy to ``folder/<name>.tif``."""
    # (the zero boundary the batch below is told: 32x32 crops, where the border is most of it)
    A = ngp.make_operator("blur", shape=(32, 32), sigma=SIGMA, boundary="zero")
    measured = {}
    for i, (name, x) in enumerate(cleans.items()):
        measured[name] = A.measure(x, noise_std=NOISE, seed=i)
        write_tiff(folder / f"{name}.tif", measured[name])
    return measured


def _images(folder: Path) -> dict[str, np.ndarray]:
    return {p.stem: read_tiff(p)[0] for p in sorted(folder.glob("*.tif"))}


def test_cli_batch_of_blurred_files_and_a_stack(tmp_path, cleans, capsys):
    measured = _blurred(cleans, tmp_path / "in")
    rc = cli.main(
        [
            "batch",
            str(tmp_path / "in" / "*.tif"),
            "--out",
            str(tmp_path / "out"),
            "--operator",
            "blur",
            "--param",
            "sigma=2",
            "--param",
            "boundary=zero",
            "--method",
            "tv",
            "--steps",
            "40",
            "--seed",
            "3",
            "--scheduler",
            "sync",
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    assert "done 3 (5 planes), skipped 0, failed 0" in out.out
    assert "plane" in out.err  # the progress bar
    for name, x in cleans.items():
        image, meta = read_tiff(tmp_path / "out" / f"{name}.tif")
        assert image.shape == x.shape and image.dtype == np.float32
        assert meta["input"] == f"{name}.tif" and meta["method"] == "tv"
        spec = ngp.make_operator("blur", shape=(32, 32), sigma=2, boundary="zero").spec()
        assert meta["operator"] == spec and meta["seed"] == 3
        assert meta["version"] == ngp.__version__ and meta["seconds"] > 0
        planes = 1 if x.ndim == 2 else len(x)
        assert meta["planes_done"] == planes and len(meta["planes"]) == planes
        assert all(p["options"]["steps"] == 40 and p["seed"] == 3 for p in meta["planes"])
        for k in np.ndindex(*x.shape[:-2]):
            assert psnr(x[k], image[k]) > psnr(x[k], measured[name][k]) + 0.5, (name, k)
    assert sorted(os.listdir(tmp_path / "in")) == ["a.tif", "b.tif", "stack.tif"]  # untouched


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},
    ) as c:
        yield c


def test_a_cluster_gives_the_same_bytes_as_a_serial_run(tmp_path, cleans, cluster):
    _blurred(cleans, tmp_path / "in")
    op = {"kind": "blur", "sigma": SIGMA}
    serial = run_batch(
        plan_batch(tmp_path / "in", tmp_path / "sync"),
        op,
        "tv",
        scheduler="sync",
        progress=False,
        **FAST,
    )
    dist = run_batch(
        plan_batch(tmp_path / "in", tmp_path / "dist"),
        op,
        "tv",
        scheduler=cluster.scheduler_address,
        progress=False,
        **FAST,
    )
    threads = run_batch(
        plan_batch(tmp_path / "in", tmp_path / "threads"),
        op,
        "tv",
        scheduler="threads",
        workers=2,
        progress=False,
        **FAST,
    )
    assert serial.ok and dist.ok and threads.ok, (dist.summary(), threads.summary())
    assert dist.scheduler == cluster.scheduler_address and threads.scheduler == "threads (2)"
    ref = _images(tmp_path / "sync")
    assert len(ref) == 3
    for other in ("dist", "threads"):
        got = _images(tmp_path / other)
        assert all(got[k].tobytes() == ref[k].tobytes() for k in ref), other
    # a Client works as well, and its workers take the torch thread count they are given
    import torch
    from distributed import Client

    with Client(cluster.scheduler_address) as client:
        report = run_batch(
            plan_batch(tmp_path / "in", tmp_path / "t2"),
            op,
            "adjoint",
            threads=2,
            scheduler=client,
            progress=False,
        )
        assert report.ok and report.scheduler == f"cluster {cluster.scheduler_address}"
        assert 2 in client.run(torch.get_num_threads).values()
        assert client.status == "running"  # not closed: it is the caller's
    # ... and the same numbers as the API, plane by plane, with the run's seed on every plane
    A = ngp.make_operator("blur", shape=(32, 32), sigma=SIGMA)
    stack = read_tiff(tmp_path / "in" / "stack.tif")[0]
    for k in range(3):
        one = ngp.reconstruct(np.ascontiguousarray(stack[k]), A, "tv", seed=0, **FAST).image
        assert one.tobytes() == ref["stack"][k].tobytes()


def test_default_scheduler(tmp_path, cleans):
    _blurred({"a": cleans["a"]}, tmp_path / "in")
    report = run_batch(
        plan_batch(tmp_path / "in", tmp_path / "out"), "denoise", "adjoint", progress=False
    )
    assert report.scheduler == "sync" and report.ok  # one plane: no cluster to start
    with pytest.raises(ValueError, match="scheduler"):
        run_batch([], "blur", "tv", scheduler="spark")
    with pytest.raises(ValueError, match="workers"):
        run_batch([], "blur", "tv", scheduler="sync", workers=2)
    with pytest.raises(ValueError, match="unknown method"):
        run_batch([], "blur", "tvv")
    with pytest.raises(ValueError, match="unknown operator kind"):
        run_batch([], {"kind": "blurr"}, "tv")


def test_workers_start_a_local_cluster_for_the_batch(tmp_path, cleans):
    _blurred({"a": cleans["a"], "b": cleans["b"]}, tmp_path / "in")
    report = run_batch(
        plan_batch(tmp_path / "in", tmp_path / "out"),
        {"kind": "blur", "sigma": 2},
        "tv",
        workers=2,
        progress=False,
        **FAST,
    )
    assert report.ok and report.scheduler == "LocalCluster (2 workers)"
    assert len(report.done) == 2


def test_an_interrupted_batch_resumes_with_the_files_not_done(tmp_path, cleans, capsys):
    _blurred(cleans, tmp_path / "in")
    args = [str(tmp_path / "in"), tmp_path / "out"]
    op = {"kind": "blur", "sigma": SIGMA}
    first = run_batch(plan_batch(*args), op, "tv", scheduler="sync", progress=False, **FAST)
    assert [f.status for f in first.files] == ["done"] * 3
    (tmp_path / "out" / "b.tif").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    jobs = plan_batch(*args)
    assert [j.done for j in jobs] == [True, False, True]
    again = run_batch(jobs, op, "tv", scheduler="sync", progress=False, **FAST)
    assert [f.input.name for f in again.done] == ["b.tif"]
    assert [f.input.name for f in again.skipped] == ["a.tif", "stack.tif"]
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    assert after.pop("b.tif") and after == before
    # overwrite=True redoes everything; the CLI says what it skipped
    assert not any(j.done for j in plan_batch(*args, overwrite=True))
    assert (
        cli.main(
            [
                "batch",
                str(tmp_path / "in"),
                "--out",
                str(tmp_path / "out"),
                "--operator",
                "blur",
                "--param",
                "sigma=2",
                "--method",
                "tv",
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    assert "3 already done" in out.out and "skipped 3" in out.out and out.err == ""


def test_unreadable_and_misfit_files_fail_with_reasons_and_the_rest_is_done(
    tmp_path, cleans, capsys
):
    _blurred({"a": cleans["a"], "stack": cleans["stack"]}, tmp_path / "in")
    (tmp_path / "in" / "garbage.tif").write_bytes(b"this is not a TIFF file" * 10)
    write_tiff(tmp_path / "in" / "wide.tif", np.zeros((32, 48), np.float32))
    write_tiff(tmp_path / "in" / "line.tif", np.zeros(32, np.float32))
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    rc = cli.main(
        [
            "batch",
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "out"),
            "--operator",
            "blur",
            "--param",
            "sigma=2",
            "--param",
            "shape=[32,32]",
            "--method",
            "tv",
            "--steps",
            "20",
            "--scheduler",
            "sync",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "done 2 (4 planes), skipped 0, failed 3" in out
    reasons = {ln.split(": ")[1]: ln for ln in out.splitlines() if ln.startswith("failed:")}
    assert "cannot be read as a TIFF image" in reasons[str(tmp_path / "in" / "garbage.tif")]
    assert "(32, 48)" in reasons[str(tmp_path / "in" / "wide.tif")]
    assert "(32, 32)" in reasons[str(tmp_path / "in" / "line.tif")]
    assert sorted(os.listdir(tmp_path / "out")) == ["a.tif", "stack.tif"]
    # the same from Python: each reason is one sentence
    report = run_batch(
        plan_batch(tmp_path / "in", tmp_path / "out"),
        {"kind": "blur", "sigma": 2},
        "tv",
        scheduler="sync",
        progress=False,
    )
    assert [f.input.name for f in report.failed] == ["garbage.tif", "line.tif"]
    assert all(f.reason.endswith(".") and f.reason.count(". ") == 0 for f in report.failed)
    assert {f.input.name for f in report.done} == {"wide.tif"}  # fits an operator of its own shape


def test_operators_from_the_files_metadata(tmp_path, cleans, capsys):
    x = cleans["a"]
    blur = ngp.make_operator("blur", shape=(32, 32), sigma=1.0)
    inpaint = ngp.make_operator("inpaint", shape=(32, 32), fraction=0.5, seed=1)
    cs = ngp.make_operator("cs", shape=(32, 32), m=300, seed=2)
    folder = tmp_path / "in"
    write_tiff(
        folder / "blurred.tif", blur.measure(x, noise_std=NOISE, seed=0), {"operator": blur.spec()}
    )
    Y = inpaint.measure(cleans["stack"], noise_std=NOISE, seed=0)
    write_tiff(folder / "holes.tif", Y, {"operator": inpaint.spec()})
    # a measurement TIFF as the plugin writes it: a picture, the exact vector in the metadata
    shown, kwargs, _ = measurement_layer(cs.measure(x, seed=0), cs, "cs")
    write_tiff(folder / "vector.tif", shown, kwargs["metadata"]["genprior"])
    write_tiff(folder / "plain.tif", x)
    rc = cli.main(
        [
            "batch",
            str(folder / "*.tif"),
            "--out",
            str(tmp_path / "out"),
            "--method",
            "adjoint",
            "--quiet",
            "--scheduler",
            "sync",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 1
    assert f"failed: {folder / 'plain.tif'}: the file carries no operator in its metadata" in out
    for name, A in (("blurred", blur), ("holes", inpaint), ("vector", cs)):
        assert read_tiff(tmp_path / "out" / f"{name}.tif")[1]["operator"] == A.spec(), name
    assert read_tiff(tmp_path / "out" / "holes.tif")[0].shape == (3, 32, 32)
    vector = read_tiff(tmp_path / "out" / "vector.tif")[0]
    assert vector.shape == (32, 32) and np.allclose(
        vector, ngp.reconstruct(cs.measure(x, seed=0), cs, "adjoint").image
    )
    with pytest.raises(SystemExit) as exc:
        cli.main(
            [
                "batch",
                str(folder),
                "--out",
                str(tmp_path / "out"),
                "--param",
                "sigma=1",
                "--method",
                "tv",
            ]
        )
    assert exc.value.code == 2 and "--param needs --operator" in capsys.readouterr().err


def test_a_downsampled_stack_is_reconstructed_at_the_full_size(tmp_path, cleans):
    A = ngp.make_operator("downsample", shape=(32, 32), factor=2)
    write_tiff(tmp_path / "in" / "small.tif", A.measure(cleans["stack"][:2], seed=0))
    report = run_batch(
        plan_batch(tmp_path / "in", tmp_path / "out"),
        {"kind": "downsample", "factor": 2},
        "adjoint",
        progress=False,
    )
    image, meta = read_tiff(tmp_path / "out" / "small.tif")
    assert report.ok and image.shape == (2, 32, 32) and meta["operator"] == A.spec()
    n = default_workers()  # two planes: by default a LocalCluster (on more than one CPU)
    assert report.scheduler == ("sync" if n == 1 else f"LocalCluster ({n} workers)")


def test_a_failed_write_leaves_no_partial_output(tmp_path, cleans, monkeypatch):
    import tifffile

    _blurred(cleans, tmp_path / "in")
    real = tifffile.imwrite

    def flaky(path, data, *args, **kwargs):
        if ".b.tif." in os.fspath(path):  # write_tiff's temporary file for b.tif
            Path(path).write_bytes(b"II*\x00 half a file")
            raise error[0]
        return real(path, data, *args, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", flaky)
    op = {"kind": "blur", "sigma": SIGMA}
    error = [OSError(errno.EIO, "Input/output error")]  # one file's write fails: the rest go on
    report = run_batch(
        plan_batch(tmp_path / "in", tmp_path / "out"),
        op,
        "tv",
        scheduler="sync",
        progress=False,
        **FAST,
    )
    assert [f.status for f in report.files] == ["done", "failed", "done"]
    assert "could not be written" in report.failed[0].reason
    assert "Input/output error" in report.failed[0].reason
    assert sorted(os.listdir(tmp_path / "out")) == ["a.tif", "stack.tif"]  # no temp file

    error[0] = OSError(errno.ENOSPC, "No space left on device")  # a full disk stops the batch
    with pytest.raises(DiskFull, match="the disk is full.*run the same command again"):
        run_batch(
            plan_batch(tmp_path / "in", tmp_path / "full"),
            op,
            "tv",
            scheduler="sync",
            progress=False,
            **FAST,
        )
    assert os.listdir(tmp_path / "full") == ["a.tif"]  # stack.tif was not attempted

    def interrupted(path, data, *args, **kwargs):
        Path(path).write_bytes(b"II*\x00 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(tifffile, "imwrite", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_batch(
            plan_batch(tmp_path / "in", tmp_path / "out"),
            op,
            "tv",
            scheduler="sync",
            progress=False,
            **FAST,
        )
    assert sorted(os.listdir(tmp_path / "out")) == ["a.tif", "stack.tif"]
    monkeypatch.setattr(tifffile, "imwrite", real)
    again = run_batch(
        plan_batch(tmp_path / "in", tmp_path / "out"),
        op,
        "tv",
        scheduler="sync",
        progress=False,
        **FAST,
    )
    assert [f.status for f in again.files] == ["skipped", "done", "skipped"]


def test_plan_batch_expands_inputs_and_never_targets_an_input(tmp_path):
    folder = tmp_path / "in"
    for name in ("b.tif", "a.TIFF", "c.tif"):
        write_tiff(folder / name, np.zeros((8, 8), np.float32))
    (folder / "readme.txt").write_text("x")
    jobs = plan_batch([folder / "c.tif", str(folder / "*.tif")], tmp_path / "out")
    assert [j.input.name for j in jobs] == ["c.tif", "b.tif"]  # c once; the pattern is sorted
    jobs = plan_batch(folder, tmp_path / "out")
    assert [j.input.name for j in jobs] == ["a.TIFF", "b.tif", "c.tif"]
    assert jobs[0] == Job(folder / "a.TIFF", tmp_path / "out" / "a.tif", False)
    with pytest.raises(ValueError, match="is an input file"):
        plan_batch(folder, folder)
    write_tiff(folder / "a.tif", np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="both be written"):
        plan_batch(folder, tmp_path / "out")
    with pytest.raises(ValueError, match="matches no TIFF"):
        plan_batch(str(tmp_path / "nothing" / "*.tif"), tmp_path / "out")
    with pytest.raises(ValueError, match="does not exist"):
        plan_batch(tmp_path / "missing.tif", tmp_path / "out")
    # an output of another input's name that is not a reconstruction of it is not done
    write_tiff(tmp_path / "out" / "b.tif", np.zeros((8, 8), np.float32), {"input": "x.tif"})
    assert not plan_batch(folder / "b.tif", tmp_path / "out")[0].done


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    folder = tmp_path / "in"
    write_tiff(folder / "a.tif", np.zeros((8, 8), np.float32))
    base = ["batch", str(folder), "--out", str(tmp_path / "out")]
    for extra in (
        ["--method", "tv", "--param", "sigma"],
        ["--operator", "blur"],
        ["--method", "tv", "--steps", "0"],
        ["--method", "tv", "--operator", "blur", "--param", "sigma=1", "--param", "sigma=2"],
    ):
        with pytest.raises(SystemExit) as exc:
            cli.main(base + extra)
        assert exc.value.code == 2, extra
    assert cli.main(base + ["--method", "tvv", "--operator", "blur"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert cli.main(["batch", str(tmp_path / "none"), "--out", "o", "--method", "tv"]) == 2
    assert cli._key_value("sigma=2") == ("sigma", 2)
    assert cli._key_value("factor=[1, 2]") == ("factor", [1, 2])
    assert cli._key_value("antialias=true") == ("antialias", True)
    assert cli._key_value("boundary=zero") == ("boundary", "zero")
    assert not (tmp_path / "out").exists()


def test_batch_help_is_light():
    code = (
        "import sys, contextlib, io; from napari_genprior.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n        main(['batch', '--help'])\n"
        "    except SystemExit:\n        pass\n"
        "assert '--scheduler' in out.getvalue()\n"
        "bad = [m for m in ('torch', 'dask', 'distributed', 'napari', 'qtpy') "
        "if m in sys.modules]\n"
        "assert not bad, bad"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
