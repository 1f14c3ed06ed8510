"""The house rules of issue 19 that a tool can check: ruff's lint and format, and no module of
``src/`` over 500 lines (one topic a module)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["src", "tests", "benchmarks", "scripts"]
MAX_LINES = 500


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint_passes():
    out = _ruff("check", "--no-cache", *PATHS)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr


def test_ruff_format_leaves_every_file_as_it_is():
    out = _ruff("format", "--check", "--no-cache", *PATHS)
    assert out.returncode == 0, (
        "run `ruff format src tests benchmarks scripts`:\n" + out.stdout[-6000:] + out.stderr
    )


def test_ruff_finds_a_planted_fault(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nx=1\n")
    lint = _ruff("check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(bad))
    fmt = _ruff(
        "format", "--check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(bad)
    )
    assert lint.returncode == 1 and "F401" in lint.stdout
    assert fmt.returncode == 1


def _long_modules(root: Path) -> dict[str, int]:
    sizes = {
        str(p.relative_to(root)): len(p.read_text().splitlines())
        for p in sorted(root.rglob("*.py"))
    }
    return {p: n for p, n in sizes.items() if n > MAX_LINES}


def test_no_module_in_src_is_over_500_lines():
    assert _long_modules(ROOT / "src") == {}


def test_the_size_check_sees_a_long_module(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "pkg" / "short.py").write_text("x = 1\n" * MAX_LINES)
    assert _long_modules(tmp_path) == {"pkg/long.py": MAX_LINES + 1}
