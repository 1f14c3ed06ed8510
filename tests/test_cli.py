import subprocess
import sys
import sysconfig

import numpy as np

from napari_genprior import __version__
from napari_genprior._io import read_tiff


def _cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "napari_genprior.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version_and_help():
    out = _cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"napari-genprior {__version__}"
    out = _cli("--help")
    assert out.returncode == 0 and "demo" in out.stdout
    out = _cli("demo", "--help")
    assert out.returncode == 0 and "--headless" in out.stdout


def test_console_script_is_installed():
    import shutil

    exe = shutil.which("napari-genprior", path=sysconfig.get_path("scripts"))
    assert exe, "the napari-genprior console script is not on PATH"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == f"napari-genprior {__version__}"


def test_help_does_not_import_torch_or_qt():
    code = (
        "import sys; from napari_genprior.cli import main; "
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()): main([])\n"
        "bad = [m for m in ('torch', 'napari', 'qtpy', 'PyQt6') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_headless_demo_writes_a_tiff_that_beats_the_input(tmp_path, nuclei):
    out_file = tmp_path / "rec.tif"
    out = _cli("demo", "--headless", "--threads", "1", "--out", str(out_file))
    assert out.returncode == 0, out.stderr
    lines = {ln.split(":")[0].strip(): ln for ln in out.stdout.splitlines() if ":" in ln}
    p_in = float(lines["PSNR input"].split(":")[1].split("dB")[0])
    p_out = float(lines["PSNR result"].split(":")[1].split("dB")[0])
    assert p_out > p_in + 5, out.stdout
    image, meta = read_tiff(out_file)
    assert image.shape == nuclei.shape and np.all(np.isfinite(image))
    # reconstruct's default: the method recommended for inpainting without a prior
    assert meta["method"] == "tv" and meta["operator"]["kind"] == "inpaint"
    assert "recommended" in lines["method"]
    from napari_genprior.metrics import psnr

    assert abs(psnr(nuclei, image) - p_out) < 0.01


def test_demo_rejects_bad_arguments(tmp_path):
    out = _cli("demo", "--headless", "--steps", "0")
    assert out.returncode == 2 and "--steps" in out.stderr
    out = _cli(
        "demo", "--headless", "--steps", "2", "--device", "tpu", "--out", str(tmp_path / "x.tif")
    )
    assert out.returncode == 2 and "device" in out.stderr and not (tmp_path / "x.tif").exists()
