"""The main job under load: ``napari-genprior demo --headless`` on an idle machine and with one
core kept busy by another process; writes ``benchmarks/results/demo-load.md`` and ``.json``.

    python benchmarks/demo_load.py [--repeats 3]

Each run is the whole command a new user types (a fresh process: imports, the sample read, the
recommended method, the TIFF written), timed from start to exit. "Busy" runs start a process
that spins one core (a pure-Python loop, as a user's other work would) before the demo and stop
it after. The bar (issue 33): under 60 s idle, within 2.2x of that with one core busy, and the
result still beats the measurement by the README's margin (26.59 dB from 13.01 dB).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: README "What it measures", the demo: the recommended result and the measurement, in dB.
README_RESULT, README_INPUT = 26.59, 13.01
SPIN = "import time\nt = time.time()\nwhile time.time() - t < 3600: pass\n"


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("napari-genprior")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "napari_genprior.cli"]


def one(busy: bool) -> dict:
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
    try:
        if spinner is not None:
            time.sleep(0.5)  # the spinner running before the demo starts
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            done = subprocess.run(
                _cli() + ["demo", "--headless", "--out", str(Path(tmp) / "demo.tif")],
                capture_output=True,
                text=True,
                env={**os.environ, "TQDM_DISABLE": "1"},
                check=True,
            )
            seconds = time.perf_counter() - t0
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    found = {
        key: float(re.search(rf"PSNR {key}\s*:\s*([-\d.]+)", done.stdout).group(1))
        for key in ("input", "result")
    }
    method = re.search(r"method\s*:\s*(\S+)", done.stdout).group(1)
    return {"busy": busy, "seconds": seconds, "method": method, **found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for _ in range(args.repeats):  # interleaved, so a change in the machine's load hits both
        for busy in (False, True):
            r = one(busy)
            rows.append(r)
            print(
                f"{'busy' if busy else 'idle'}: {r['seconds']:.1f} s, {r['method']} "
                f"{r['result']:.2f} dB from {r['input']:.2f}",
                flush=True,
            )
    idle = statistics.median(r["seconds"] for r in rows if not r["busy"])
    busy = statistics.median(r["seconds"] for r in rows if r["busy"])
    worst = min(r["result"] - r["input"] for r in rows)
    checks = {
        "under 60 s on the idle machine": idle < 60,
        "within 2.2x of that with one core busy": busy <= 2.2 * idle,
        "beats the measurement by the README's margin": worst
        >= README_RESULT - README_INPUT - 0.01,
    }
    lines = [
        "# The demo under load",
        "",
        f"`napari-genprior demo --headless`, whole process timed, {args.repeats} runs each, "
        f"{os.cpu_count()} cores (`python benchmarks/demo_load.py`). Busy: another process spins "
        "one core throughout.",
        "",
        "| machine | median (s) | runs (s) | method | PSNR (dB) |",
        "|---|---|---|---|---|",
    ]
    for flag, med in ((False, idle), (True, busy)):
        mine = [r for r in rows if r["busy"] == flag]
        lines.append(
            f"| {'one core busy' if flag else 'idle'} | {med:.1f} | "
            + ", ".join(f"{r['seconds']:.1f}" for r in mine)
            + f" | {mine[0]['method']} | {mine[0]['result']:.2f} from {mine[0]['input']:.2f} |"
        )
    lines += ["", f"Busy / idle: {busy / idle:.2f}x.", ""]
    lines += [f"- {'PASS' if ok else 'MISS'}: {name}" for name, ok in checks.items()]
    out = ROOT / "benchmarks" / "results"
    (out / "demo-load.md").write_text("\n".join(lines) + "\n")
    (out / "demo-load.json").write_text(
        json.dumps({"cores": os.cpu_count(), "rows": rows, "checks": checks}, indent=1)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
