"""``napari-genprior bench``: reproduce the seed's claims as tables (markdown + JSON) and plots.

Each experiment is a module of this package with a function

    run(quick: bool, device: str, seed: int) -> Result

registered in :data:`EXPERIMENTS`. ``quick`` sizes finish in a few minutes on 2 CPU cores (the
test suite runs them as a smoke test); full sizes are for a longer run or a GPU. Every figure
comes from fixed seeds on held-out data; no method is tuned on the ground truth.

:func:`run_experiments` runs a selection and writes ``<out>/<name>.md``, ``<name>.json`` and
each of the result's figures as ``<out>/<name>-<figure>.png`` (quick runs add ``-quick`` to
the names so that they never overwrite the committed full results).
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EXPERIMENTS", "Result", "run_experiments", "markdown_table"]

# name -> module (in this package) holding ``run``; in the order they are run and reported
EXPERIMENTS: dict[str, str] = {
    "cs-digits": "cs_digits",
    "phase": "phase",
    "random-prior": "random_prior",
    "mri": "mri",
    "microscopy": "microscopy",
    "speed": "speed",
    "real-mri": "real_mri",
    "real-nuclei": "real_nuclei",
    "real-digits": "real_digits",
    "mri-multicoil": "mri_multicoil",
    "deconv-3d": "deconv3d",
    "deconv-3d-scale": "deconv3d_scale",
    "deconv-3d-chunks": "deconv3d_chunks",
    "peers": "peers",
    "real-acquisition": "real_acquisition",
    "mri-acquired": "mri_acquired",
    "self-supervised": "self_supervised",
}


@dataclass
class Result:
    """What one experiment produced.

    Attributes
    ----------
    name : str
        The experiment's key in :data:`EXPERIMENTS`.
    title : str
        One line: what was measured.
    markdown : str
        The results as markdown (tables and a few sentences; no title line).
    data : dict
        Everything measured, JSON-serialisable (written as ``<name>.json``).
    figures : dict
        ``{short name: matplotlib Figure}``, written as PNGs.
    checks : dict
        ``{target: bool}``: the claims this experiment tests and whether they held.
    """

    name: str
    title: str
    markdown: str
    data: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)


def markdown_table(header: list[str], rows: list[list[Any]], fmt: str = "{:.4g}") -> str:
    """A markdown table; floats formatted with ``fmt``, None as a dash."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return fmt.format(v)
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _environment(device: str, threads: int) -> dict[str, Any]:
    import torch

    from napari_genprior._version import __version__

    return {
        "version": __version__,
        "device": device,
        "torch": torch.__version__,
        "threads": threads,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_experiments(
    names: list[str] | None = None,
    *,
    quick: bool = False,
    out: str | Path = "benchmarks/results",
    device: str = "auto",
    seed: int = 0,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> list[Result]:
    """Run experiments (all by default) and write their tables, JSON and plots under ``out``."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    import torch

    from napari_genprior.devices import resolve_device

    names = list(EXPERIMENTS) if not names else list(names)
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}.")
    if threads is not None:
        torch.set_num_threads(int(threads))
    dev = str(resolve_device(device))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = _environment(dev, torch.get_num_threads())
    suffix = "-quick" if quick else ""
    results = []
    for name in names:
        module = importlib.import_module(f"{__name__}.{EXPERIMENTS[name]}")
        t0 = time.perf_counter()
        log(f"bench {name}{' (quick)' if quick else ''} on {dev} ...")
        res: Result = module.run(quick=quick, device=dev, seed=seed)
        seconds = time.perf_counter() - t0
        stem = f"{name}{suffix}"
        for fig_name, fig in res.figures.items():
            fig.savefig(out / f"{stem}-{fig_name}.png", dpi=110, bbox_inches="tight")
        checks = "\n".join(
            f"- {'PASS' if ok else 'MISS'}: {claim}" for claim, ok in res.checks.items()
        )
        figs = "\n".join(f"![{fig_name}]({stem}-{fig_name}.png)" for fig_name in res.figures)
        command = f"napari-genprior bench {name}{' --quick' if quick else ''}"
        text = (
            f"# {res.title}\n\n{res.markdown.strip()}\n\n"
            + (f"## Targets\n\n{checks}\n\n" if checks else "")
            + (f"{figs}\n\n" if figs else "")
            + f"Command: `{command}` ({seconds:.0f} s; {env['device']}, "
            f"{env['threads']} torch thread(s), torch {env['torch']}, "
            f"napari-genprior {env['version']}).\n"
        )
        (out / f"{stem}.md").write_text(text)
        (out / f"{stem}.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "title": res.title,
                    "quick": quick,
                    "seconds": seconds,
                    "environment": env,
                    "checks": res.checks,
                    "data": res.data,
                },
                indent=1,
                default=float,
            )
        )
        log(
            f"bench {name}: {seconds:.0f} s; "
            + (
                ", ".join(f"{'PASS' if ok else 'MISS'} {claim}" for claim, ok in res.checks.items())
                or "done"
            )
        )
        results.append(res)
    return results
