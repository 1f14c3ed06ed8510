"""DESIGN's layering: the library runs headless (no napari, Qt or magicgui below _widgets)."""

import shutil
import subprocess
import sysconfig
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports", path=sysconfig.get_path("scripts"))
    if exe is None:
        pytest.fail("import-linter is not installed (it is in the [testing] extra)")
    out = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


GUI = {"napari", "qtpy", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy"}


def test_package_import_is_light():
    loaded = _modules_after("import napari_genprior")
    assert not loaded & (GUI | {"torch"}), loaded & (GUI | {"torch"})


def test_the_whole_library_runs_without_napari_or_qt():
    code = ("import numpy as np, napari_genprior as ngp\n"
            "A = ngp.make_operator('inpaint', shape=(16, 16), fraction=0.5, seed=0)\n"
            "y = A.measure(np.ones((16, 16)), noise_std=0.1, seed=0)\n"
            "ngp.reconstruct(y, A, method='dip', steps=2, device='cpu')\n"
            "ngp.metrics.psnr(np.ones((16, 16)), y)")
    loaded = _modules_after(code)
    assert "torch" in loaded
    assert not loaded & GUI, loaded & GUI
