"""3D deconvolution in overlapping chunks on dask (issue 35): the result matches the
whole-volume run, has no seams, and is the same on every scheduler."""

from __future__ import annotations

import numpy as np
import pytest

import napari_genprior as ngp
from napari_genprior.batch._chunked import psf_reach
from napari_genprior.volumes import nuclei_volume


@pytest.fixture(scope="module")
def stack():
    x = nuclei_volume((24, 64, 64), voxel=(0.25, 0.1, 0.1), seed=3)
    A = ngp.make_operator("blur", shape=x.shape, sigma=(1.5, 1.2, 1.2))
    return x, A, A.measure(x, photons=300, seed=0)


def test_chunks_match_the_whole_volume_without_seams(stack):
    x, A, y = stack
    chunks = (8, 32, 32)
    vol = ngp.reconstruct_chunked(y, A.psf, chunks=chunks, scheduler="sync")
    whole = ngp.reconstruct(y, A, method="richardson-lucy", device="cpu")
    steps = whole.params["iterations"]
    assert vol.shape == x.shape and vol.dtype == np.float32
    # the same count on the whole volume: the chunked result is within 0.1 dB of it
    same = ngp.reconstruct(y, A, method="richardson-lucy", steps=steps, holdout=0.0)
    assert abs(ngp.metrics.psnr(x, vol) - ngp.metrics.psnr(x, same.image)) < 0.1
    assert ngp.metrics.psnr(x, vol) > ngp.metrics.psnr(x, y) + 1
    # no seams: the error next to chunk borders is no larger than inside the chunks
    err = (vol - x) ** 2
    border = np.zeros(x.shape, bool)
    for axis, c in enumerate(chunks):
        for edge in range(c, x.shape[axis], c):
            idx = [slice(None)] * 3
            idx[axis] = slice(edge - 1, edge + 1)
            border[tuple(idx)] = True
    assert err[border].mean() <= 1.1 * err[~border].mean(), (
        err[border].mean(),
        err[~border].mean(),
    )


def test_every_scheduler_gives_the_same_volume(stack):
    from dask.distributed import Client, LocalCluster

    _, A, y = stack
    kw = dict(chunks=(12, 32, 32), steps=15)
    sync = ngp.reconstruct_chunked(y, A.psf, scheduler="sync", **kw)
    threads = ngp.reconstruct_chunked(y, A.psf, scheduler="threads", **kw)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as c:
        with Client(c) as client:
            dist = ngp.reconstruct_chunked(y, A.psf, scheduler=client, **kw)
    np.testing.assert_array_equal(sync, threads)
    np.testing.assert_array_equal(sync, dist)


def test_the_overlap_follows_the_psf_and_bad_input_is_refused(stack):
    _, A, y = stack
    reach = psf_reach(A.psf)
    assert reach[0] > 0 and reach[1] == reach[2]
    wide = psf_reach(ngp.make_operator("blur", shape=(24, 64, 64), sigma=(3.0, 1.2, 1.2)).psf)
    assert wide[0] > reach[0] and wide[1] == reach[1]
    with pytest.raises(ValueError, match="3D stacks"):
        ngp.reconstruct_chunked(y[0], A.psf[0])
    with pytest.raises(ValueError, match="chunks must be three"):
        ngp.reconstruct_chunked(y, A.psf, chunks=(8, 8))
    with pytest.raises(ValueError, match="does not run in chunks"):
        ngp.reconstruct_chunked(y, A.psf, method="dip")


def test_ome_zarr_in_and_out_keeps_voxel_size_and_parameters(stack, tmp_path):
    from napari_genprior._omezarr import read_ome_zarr, write_ome_zarr

    x, A, y = stack
    src = write_ome_zarr(tmp_path / "in.zarr", y, voxel=(0.25, 0.1, 0.1), chunks=(8, 32, 32))
    lazy = ngp.reconstruct_chunked(src, A.psf, chunks=(12, 32, 32), steps=10)
    assert type(lazy).__name__ == "Array"  # dask: nothing computed yet
    out = ngp.reconstruct_chunked(
        src, A.psf, chunks=(12, 32, 32), steps=10, out=tmp_path / "out.zarr", scheduler="threads"
    )
    arr, voxel, attrs = read_ome_zarr(out)
    assert voxel == (0.25, 0.1, 0.1) and arr.shape == y.shape
    np.testing.assert_array_equal(np.asarray(arr), lazy.compute(scheduler="sync"))
    meta = attrs["genprior"]
    assert (
        meta["method"] == "richardson-lucy"
        and meta["steps"] == 10
        and meta["chunks"] == [12, 32, 32]
    )
    (ms,) = attrs["multiscales"]
    assert ms["version"] == "0.4" and [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    # nothing is overwritten; a folder that is not OME-Zarr is refused with a sentence
    with pytest.raises(FileExistsError, match="nothing is overwritten"):
        ngp.reconstruct_chunked(src, A.psf, steps=10, out=out)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not an OME-Zarr"):
        ngp.reconstruct_chunked(tmp_path / "plain", A.psf)


def test_the_command_line_deconvolves_an_ome_zarr_as_the_library_does(stack, tmp_path, capsys):
    from napari_genprior import cli
    from napari_genprior._omezarr import read_ome_zarr, write_ome_zarr

    _, _, y = stack
    src = write_ome_zarr(tmp_path / "in.zarr", y, voxel=(0.25, 0.1, 0.1))
    args = ["deconvolve", str(src), "--out", str(tmp_path / "out.zarr"), "--sigma", "1.5", "1.2"]
    args += ["1.2", "--chunks", "12", "32", "32", "--steps", "5", "--scheduler", "sync"]
    assert cli.main(args) == 0 and "wrote" in capsys.readouterr().out
    arr, voxel, attrs = read_ome_zarr(tmp_path / "out.zarr")
    assert voxel == (0.25, 0.1, 0.1) and attrs["genprior"]["steps"] == 5
    B = ngp.make_operator("blur", shape=(13, 11, 11), sigma=(1.5, 1.2, 1.2))
    same = ngp.reconstruct_chunked(src, B.psf, chunks=(12, 32, 32), steps=5, scheduler="sync")
    np.testing.assert_allclose(np.asarray(arr), same, rtol=1e-5, atol=1e-6)
    assert cli.main(args) == 2  # the output exists: refused, nothing overwritten
    assert "nothing is overwritten" in capsys.readouterr().err


def test_the_chunks_benchmark_runs_at_quick_size(tmp_path):
    import json

    import genprior_bench as bench

    bench.run_experiments(
        ["deconv-3d-chunks"], quick=True, out=tmp_path, device="cpu", log=lambda line: None
    )
    record = json.loads((tmp_path / "deconv-3d-chunks-quick.json").read_text())
    rows = {r["how"]: r for r in record["data"]["rows"]}
    assert {"chunks", "whole"} <= set(rows)
    assert all("error" not in r and r["peak_gib"] > 0 for r in rows.values()), rows
    assert record["checks"]["chunks within 0.1 dB of the whole volume"]


def test_the_command_line_says_what_is_wrong_with_its_optics(tmp_path, capsys):
    from napari_genprior import cli

    for bad, words in (("{bad", "not JSON"), ("[1, 2]", "expected a JSON object")):
        with pytest.raises(SystemExit) as stop:
            cli.main(
                ["deconvolve", str(tmp_path), "--out", str(tmp_path / "o.zarr"), "--optics", bad]
            )
        assert stop.value.code == 2 and words in capsys.readouterr().err


def test_the_generator_writes_the_same_volume_chunk_by_chunk_and_stops_when_asked(stack, tmp_path):
    from napari_genprior._omezarr import read_ome_zarr
    from napari_genprior.batch import iter_reconstruct_chunked

    _, A, y = stack
    chunks, kw = (8, 32, 32), {"steps": 5, "camera": None}
    lib = ngp.reconstruct_chunked(y, A.psf, chunks=chunks, scheduler="sync", **kw)
    run = iter_reconstruct_chunked(y, A.psf, tmp_path / "a.zarr", chunks=chunks, **kw)
    updates = []
    try:
        while True:
            updates.append(next(run))
    except StopIteration as done:
        path = done.value
    assert [u.step for u in updates] == list(range(1, 13)) and updates[0].total == 12
    vol, _, attrs = read_ome_zarr(path)
    assert np.array_equal(np.asarray(vol), lib)  # the same chunks, count and camera
    assert attrs["genprior"]["steps"] == 5 and "cancelled_after" not in attrs["genprior"]
    assert vol.chunks[0][0] == 1  # stored a plane deep: a viewer reads one plane, not a slab
    # stopped after 3 chunks: those are written, the rest zero, and the output says so
    run = iter_reconstruct_chunked(
        y, A.psf, tmp_path / "b.zarr", chunks=chunks, voxel=(0.25, 0.1, 0.1), **kw
    )
    for _ in range(3):
        u = run.send(None)
    with pytest.raises(StopIteration) as done:
        run.send(False)
    part, voxel, attrs = read_ome_zarr(done.value.value)
    part = np.asarray(part)
    assert attrs["genprior"]["cancelled_after"] == 3 and voxel == (0.25, 0.1, 0.1)
    assert np.array_equal(part[u.core], lib[u.core]) and not part[8:].any()
    with pytest.raises(FileExistsError):  # nothing is overwritten
        next(iter_reconstruct_chunked(y, A.psf, tmp_path / "b.zarr", chunks=chunks, **kw))


def test_the_batch_command_deconvolves_ome_zarr_stacks_in_a_folder_and_resumes(
    stack, tmp_path, capsys
):
    from napari_genprior import cli
    from napari_genprior._omezarr import read_ome_zarr, write_ome_zarr
    from napari_genprior.operators.blur import gaussian_psf

    _, _, y = stack
    (tmp_path / "in").mkdir()
    src = write_ome_zarr(tmp_path / "in" / "a.zarr", y, voxel=(0.25, 0.1, 0.1))
    args = ["batch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--volume"]
    args += ["--operator", "blur", "--param", "sigma=[1.5,1.2,1.2]", "--method"]
    args += ["richardson-lucy", "--steps", "4", "--scheduler", "sync"]
    assert cli.main(args) == 0 and "done" in capsys.readouterr().out
    out, voxel, attrs = read_ome_zarr(tmp_path / "out" / "a.zarr")
    same = ngp.reconstruct_chunked(src, gaussian_psf((1.5, 1.2, 1.2)), steps=4, scheduler="sync")
    np.testing.assert_array_equal(np.asarray(out), same)
    assert voxel == (0.25, 0.1, 0.1) and not list((tmp_path / "out").glob("*.partial"))
    assert cli.main(args) == 0 and "skipped (exists" in capsys.readouterr().out
    # a stack needs a 3D blur and Richardson-Lucy: said, not guessed
    assert cli.main([*args[:4], "--method", "richardson-lucy"]) == 2
    assert "needs a 3D blur" in capsys.readouterr().err
    assert cli.main([*args[:-5], "tv"]) == 2
    assert "--method tv is not one" in capsys.readouterr().err


def test_a_chunk_too_large_for_the_machine_is_refused_with_the_reason(stack, monkeypatch):
    from napari_genprior.batch import _chunked

    _, A, y = stack
    monkeypatch.setattr(_chunked, "_physical_memory", lambda: 2**20)  # a 1 MiB machine
    with pytest.raises(ValueError, match="each chunk would need about .* Give smaller chunks"):
        ngp.reconstruct_chunked(y, A.psf, chunks=(8, 32, 32), steps=2, scheduler="sync")
