"""A batch stays steady under faults: a dask worker killed mid-run (its planes and the data
scattered to it are done again elsewhere), and the command stopped by SIGINT or SIGTERM (it
says so in a sentence, keeps the finished files, and the same command finishes the rest).
Each ends with every file done once, with the pixels of an undisturbed run, and no partial
file. (tests/test_batch_crash.py kills the whole batch with SIGKILL.)"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import napari_genprior as ngp
from napari_genprior import cli
from napari_genprior._io import read_tiff, write_tiff
from napari_genprior.batch import plan_batch, run_batch

N_FILES, PLANES, STEPS = 6, 2, 100
OPERATOR = {"kind": "blur", "sigma": 2.0}
NAMES = [f"s{i}.tif" for i in range(N_FILES)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, nuclei) -> Path:
    """Six blurred, noisy stacks of two 32x32 planes cut from the nuclei sample."""
    folder = tmp_path_factory.mktemp("steady") / "in"
    A = ngp.make_operator("blur", shape=(32, 32), sigma=2.0)
    x = nuclei.astype(np.float32)
    for i in range(N_FILES):
        planes = [
            A.measure(
                x[16 * (i % 4) + 40 * k :][:32, 15 * k + 9 * i :][:, :32],
                noise_std=40.0,
                seed=10 * i + k,
            )
            for k in range(PLANES)
        ]
        write_tiff(folder / NAMES[i], np.stack(planes))
    return folder


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> dict[str, tuple[np.ndarray, dict]]:
    """The same batch run serially, undisturbed."""
    out = tmp_path_factory.mktemp("reference")
    report = run_batch(
        plan_batch(inputs, out), OPERATOR, "tv", scheduler="sync", progress=False, steps=STEPS
    )
    assert report.ok and len(report.done) == N_FILES
    return {name: read_tiff(out / name) for name in NAMES}


def _same_as_reference(out: Path, reference) -> None:
    """Every output there, nothing else (no temporary file), each with the reference's pixels
    and every plane solved once."""
    assert sorted(os.listdir(out)) == NAMES
    for name in NAMES:
        data, meta = read_tiff(out / name)
        ref, ref_meta = reference[name]
        assert data.dtype == ref.dtype and data.tobytes() == ref.tobytes(), name
        assert meta["input"] == name and meta["planes_done"] == PLANES
        assert len(meta["planes"]) == PLANES and meta["stack_shape"] == [PLANES]
        timing = {"seconds", "planes"}
        assert {k: v for k, v in meta.items() if k not in timing} == {
            k: v for k, v in ref_meta.items() if k not in timing
        }, name


# -- a worker killed -----------------------------------------------------------------------------


def test_a_worker_killed_mid_batch_changes_nothing(inputs, reference, tmp_path):
    from distributed import Client, LocalCluster

    out = tmp_path / "out"
    killed: dict[str, object] = {}

    def kill_a_busy_worker(client) -> None:
        # the worker busy with a plane that holds the most scattered data (planes, operators)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                held = client.has_what()
                victim = max(busy, key=lambda w: len(held.get(w, ())))
                pid = client.run(os.getpid, workers=[victim])[victim]
                killed.update(worker=victim, pid=pid, outputs=len(list(out.glob("*.tif"))))
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.01)

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": ":0"},
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        killer = threading.Thread(target=kill_a_busy_worker, args=(client,), daemon=True)
        killer.start()
        report = run_batch(
            plan_batch(inputs, out), OPERATOR, "tv", scheduler=client, progress=False, steps=STEPS
        )
        killer.join(30)
        assert killed, "no plane was seen running"
        assert killed["outputs"] < N_FILES  # killed mid-run
        pids = client.run(os.getpid).values()  # the nanny started a new worker
        assert killed["pid"] not in pids

    assert report.ok, report.summary()
    assert sorted(f.input.name for f in report.done) == NAMES  # each file done once
    assert report.summary().startswith(
        f"done {N_FILES} ({N_FILES * PLANES} planes), skipped 0, failed 0"
    )
    _same_as_reference(out, reference)


# -- the command stopped by a signal -------------------------------------------------------------


def _reset_sigint() -> None:
    # a child inherits an ignored SIGINT (a test runner's worker may ignore it), and Python
    # then installs no KeyboardInterrupt; a terminal's Ctrl-C finds the default
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    "sig, status, word",
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["SIGINT", "SIGTERM"],
)
def test_a_batch_stopped_by_a_signal_says_so_and_the_rerun_does_the_rest(
    inputs, reference, tmp_path, capsys, sig, status, word
):
    import psutil

    out = tmp_path / "out"
    args = [
        "batch",
        str(inputs),
        "--out",
        str(out),
        "--operator",
        "blur",
        "--param",
        "sigma=2",
        "--method",
        "tv",
        "--steps",
        str(STEPS),
        "--quiet",
    ]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "napari_genprior.cli",
            *args,
            "--workers",
            "2",
        ],  # a LocalCluster of two worker processes
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        preexec_fn=_reset_sigint,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and not list(out.glob("*.tif")):
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()[1].decode()
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)  # promptly: measured 3 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = stderr.decode()
    assert proc.returncode == status, err
    assert (
        f"napari-genprior: {word}; finished files are kept, run the same command again "
        "to do the rest" in err
    )
    assert "Traceback" not in err
    _, alive = psutil.wait_procs(workers, timeout=30)  # the cluster was closed, not orphaned
    assert not alive

    # only complete outputs, no temporary file; then the same command does the rest
    kept = sorted(os.listdir(out))
    assert 1 <= len(kept) < N_FILES and all(name in NAMES for name in kept), kept
    for name in kept:
        assert read_tiff(out / name)[0].shape == (PLANES, 32, 32)
    assert cli.main([*args, "--scheduler", "sync"]) == 0
    text = capsys.readouterr().out
    assert f"batch       : {N_FILES} file(s), {len(kept)} already done" in text
    assert (
        f"done {N_FILES - len(kept)} ({(N_FILES - len(kept)) * PLANES} planes), "
        f"skipped {len(kept)}, failed 0"
    ) in text
    _same_as_reference(out, reference)


def test_a_local_cluster_closed_after_an_interrupt_logs_nothing(monkeypatch):
    """The cut-short tasks' tracebacks (tornado's "Exception in callback") are not printed
    under the "interrupted" sentence: logging is off while the client and cluster close, and
    on again after."""
    from distributed import Client

    from napari_genprior.batch import _dask

    at_close = []
    real_close = Client.close

    def close(self, *args, **kwargs):
        at_close.append(logging.root.manager.disable)
        return real_close(self, *args, **kwargs)

    monkeypatch.setattr(Client, "close", close)
    with pytest.raises(KeyboardInterrupt), _dask._client(None, 1):
        raise KeyboardInterrupt
    assert at_close and min(at_close) >= logging.CRITICAL
    assert logging.root.manager.disable == logging.NOTSET
    with _dask._client(None, 1):  # an ordinary close logs as before
        pass
    assert at_close[-1] == logging.NOTSET


def test_sigterm_while_writing_removes_the_file_being_written(
    inputs, tmp_path, monkeypatch, capsys
):
    import tifffile

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are set in the main thread only")
    real = tifffile.imwrite
    written = []

    def write_then_terminated(path, data, *args, **kwargs):
        if len(written) == 2:  # the third output: half written when SIGTERM comes
            Path(path).write_bytes(b"II*\x00 half a file")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
            pytest.fail("SIGTERM did not stop the batch")
        written.append(path)
        return real(path, data, *args, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", write_then_terminated)
    out = tmp_path / "out"

    def not_handled(signum, frame):  # were the command's handler missing, the test would fail
        raise AssertionError("the command did not handle SIGTERM")  # (not kill pytest)

    before = signal.signal(signal.SIGTERM, not_handled)
    try:
        rc = cli.main(
            [
                "batch",
                str(inputs),
                "--out",
                str(out),
                "--operator",
                "blur",
                "--param",
                "sigma=2",
                "--method",
                "adjoint",
                "--scheduler",
                "sync",
                "--quiet",
            ]
        )
        assert rc == 143 and signal.getsignal(signal.SIGTERM) is not_handled  # restored
    finally:
        signal.signal(signal.SIGTERM, before)
    assert "napari-genprior: terminated; finished files are kept" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == NAMES[:2]  # the third's temporary file is gone
