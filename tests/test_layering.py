"""DESIGN's layering: the library runs headless (no napari, Qt or magicgui below _widgets)."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports", path=sysconfig.get_path("scripts"))
    if exe is None:
        pytest.fail("import-linter is not installed (it is in the [testing] extra)")
    import os

    path = os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")]))
    out = subprocess.run(
        [exe, "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": path},  # genprior_bench lives in benchmarks/
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


GUI = {"napari", "qtpy", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy"}


def test_package_import_is_light():
    loaded = _modules_after("import napari_genprior")
    assert not loaded & (GUI | {"torch"}), loaded & (GUI | {"torch"})


def test_the_whole_library_runs_without_napari_or_qt():
    code = (
        "import numpy as np, napari_genprior as ngp\n"
        "A = ngp.make_operator('inpaint', shape=(16, 16), fraction=0.5, seed=0)\n"
        "y = A.measure(np.ones((16, 16)), noise_std=0.1, seed=0)\n"
        "ngp.reconstruct(y, A, method='dip', steps=2, device='cpu')\n"
        "ngp.metrics.psnr(np.ones((16, 16)), y)"
    )
    loaded = _modules_after(code)
    assert "torch" in loaded
    assert not loaded & GUI, loaded & GUI


def _import_cycles(package: str = "napari_genprior") -> list[list[str]]:
    """Strongly connected groups of more than one module in the package's import graph (every
    import counts, also those inside functions: a lazy import is still a dependency)."""
    import grimp

    graph = grimp.build_graph(package)
    edges = {
        m: {n for n in graph.find_modules_directly_imported_by(m) if n.startswith(package)}
        for m in graph.modules
        if m.startswith(package)
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for m in sorted(edges):
        if m not in index:
            visit(m)
    return cycles


def test_no_module_imports_back_into_what_imports_it():
    assert _import_cycles() == []


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    pkg = tmp_path / "napari_genprior_cycle_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from . import a\n")
    (pkg / "c.py").write_text("from . import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # a imports b only inside a function, b imports a: a circle; c only imports a: none
    assert _import_cycles("napari_genprior_cycle_probe") == [
        ["napari_genprior_cycle_probe.a", "napari_genprior_cycle_probe.b"]
    ]
