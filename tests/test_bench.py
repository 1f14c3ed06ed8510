"""``napari-genprior bench``: the cs-digits and random-prior experiments at quick sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import genprior_bench as bench
from genprior_bench.cs_digits import best_lasso_ratio, measurements_needed
from napari_genprior import cli

EXPECTED = {
    "cs-digits": {
        "figures": ("curves", "gallery"),
        "data": (
            "ms",
            "mse",
            "mean",
            "sem",
            "measurements_needed",
            "ratio_best_lasso_over_csgm",
            "floor",
        ),
    },
    "random-prior": {
        "figures": ("success",),
        "data": ("ratios", "success", "caught", "latent_error", "cosine_with_minus_z0"),
    },
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Both experiments once at quick sizes: (results, output folder)."""
    out = tmp_path_factory.mktemp("bench")
    results = bench.run_experiments(
        list(EXPECTED), quick=True, out=out, device="cpu", log=lambda line: None
    )
    return results, out


def _written(out: Path, name: str, figures: tuple[str, ...]) -> dict:
    """Check the files of one quick experiment and return its parsed JSON."""
    stem = f"{name}-quick"
    for path in [out / f"{stem}.md", out / f"{stem}.json"] + [
        out / f"{stem}-{fig}.png" for fig in figures
    ]:
        assert path.is_file() and path.stat().st_size > 0, path
    record = json.loads((out / f"{stem}.json").read_text())
    assert {"name", "title", "quick", "seconds", "environment", "checks", "data"} <= set(record)
    assert record["name"] == name and record["quick"] is True
    return record


@pytest.mark.parametrize("name", list(EXPECTED))
def test_quick_run_writes_tables_json_and_figures(quick_run, name):
    results, out = quick_run
    assert [r.name for r in results] == list(EXPECTED)
    record = _written(out, name, EXPECTED[name]["figures"])
    assert set(EXPECTED[name]["data"]) <= set(record["data"])
    assert record["checks"] and all(isinstance(v, bool) for v in record["checks"].values())
    text = (out / f"{name}-quick.md").read_text()
    assert "## Targets" in text and "--quick" in text


def test_cs_digits_quick_keeps_the_ordering_at_m_100(quick_run):
    _, out = quick_run
    data = json.loads((out / "cs-digits-quick.json").read_text())["data"]
    j = data["ms"].index(100)
    mean = {k: v[j] for k, v in data["mean"].items()}
    assert mean["csgm"] < mean["lasso-dct"] and mean["csgm"] < mean["lasso-wavelet"], mean
    assert np.isfinite(data["floor"]["mean"]) and data["floor"]["mean"] > 0


def test_random_prior_quick_twist_recovers_at_the_largest_ratio(quick_run):
    _, out = quick_run
    data = json.loads((out / "random-prior-quick.json").read_text())["data"]
    assert data["success"]["random"]["twist"][-1] >= 0.75, data["success"]


def test_bench_through_the_cli(tmp_path, capsys):
    # random-prior: the quicker experiment (cs-digits went through run_experiments above)
    assert cli.main(["bench", "random-prior", "--quick", "--out", str(tmp_path)]) == 0
    assert "wrote 1 experiment(s)" in capsys.readouterr().out
    _written(tmp_path, "random-prior", EXPECTED["random-prior"]["figures"])


def test_unknown_experiment_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown experiment"):
        bench.run_experiments(["no-such"], quick=True, out=tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "no-such", "--quick", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "unknown experiment" in capsys.readouterr().err


@pytest.mark.parametrize(
    "mse, expected",
    [
        ([0.1, 0.01, 0.001], 100.0),  # exactly at a measured point
        ([1.0, 0.1, 0.001], 10**2.5),  # half-way between 100 and 1000 in log-log
        ([0.005, 0.002, 0.001], 10.0),  # the first point is already below
        ([0.1, 0.05, 0.02], None),  # never reached
    ],
)
def test_measurements_needed_interpolates_in_log_log(mse, expected):
    got = measurements_needed([10, 100, 1000], mse, 0.01)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_best_lasso_ratio_takes_the_better_lasso_and_flags_lower_bounds():
    needed = {"csgm": 50.0, "sparse-gen": None, "lasso-dct": 400.0, "lasso-wavelet": 300.0}
    assert best_lasso_ratio(needed, 750) == (6.0, False)
    assert best_lasso_ratio({**needed, "lasso-dct": None, "lasso-wavelet": None}, 750) == (
        15.0,
        True,
    )
    assert best_lasso_ratio({**needed, "csgm": None}, 750) == (None, False)
