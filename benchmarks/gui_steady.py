"""Steady over long use (issue 18): 50 reconstructions in a row in one viewer.

    xvfb-run -a python benchmarks/gui_steady.py [--runs 50] [--threads 1] [--no-popups]

A shown napari viewer (Xvfb, software OpenGL) with the Simulate, Compare and Reconstruct widgets
docked. Each run, as a user clicks it: Simulate a blurred, noisy measurement of a 64x64 nuclei
crop; Reconstruct it (previews on); Compare the result with the clean image; delete the three
layers the run added, one by one. Odd runs are short tv runs that finish; even runs are long
dip runs cancelled at their first preview. A 10 ms timer records the event loop's ticks; a gap
between ticks is a stall. The 200 ms target is for the stalls while a reconstruction runs (from
the click on Run to its result in the viewer); the stalls of the whole run, the user's own
clicks included (Simulate, Compare, deleting layers, each followed by a short pause), are
reported beside. After each run (after ``gc.collect()``) the resident memory, the layers, the
threads, napari's running workers, the Qt widgets and objects, the callbacks on the layer list
and Compare's plotted lines are counted, and at runs 1, 5, 10, 25 and 50 the layers, workers
and figures alive: none may grow after the first few runs. napari's notification pop-ups and
the workers napari's window keeps are counted apart. Writes
``benchmarks/results/gui-steady.{md,json}`` (``--no-popups``: ``gui-steady-no-popups``).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import threading
import time
from pathlib import Path

import torch  # before any Qt binding

RESULTS = Path(__file__).parent / "results"
TARGET_MS = 200.0
RSS_SLACK_MB = 50.0
CHECKPOINTS = (1, 5, 10, 25, 50)
#: What must not grow from run 10 to the last, besides the memory (RSS_SLACK_MB): exactly, or
#: by at most QT_SLACK for the Qt counts (7 QPropertyAnimations of napari's come and go).
COUNTS = (
    "layers",
    "python_threads",
    "workers_running",
    "qt_widgets",
    "qt_objects",
    "layer_list_callbacks",
    "plot_lines",
    "live_layers",
    "live_workers_not_napari_tasks",
    "live_figures",
)
QT_SLACK = 16
#: Where the longest stalls during a reconstruction were found (the widget's callbacks and
#: napari's layer creation timed in an instrumented copy of these runs).
STALL_CAUSES = (
    "The longest stalls while a reconstruction runs are napari making one layer: in a "
    "cancelled dip run the first preview's (`viewer.add_image` in the Reconstruct widget's "
    "update: the layer, its controls and its vispy node; the worker now waits until that "
    "preview is shown, so that the solver's thread no longer competes for the GIL meanwhile: "
    "209 ms before, on the same idle machine), in a tv run the result's (the run ends before "
    "its first preview). The widget makes one layer a run: the preview becomes the result."
)


def napari_task_workers(viewer) -> int:
    """Finished and running workers that napari's window itself keeps: since napari 0.6.5 every
    ``thread_worker`` made while a viewer is open is registered as a task of its window (for the
    close-confirmation dialog), with ``worker.quit`` as its cancel callback, and the task list
    is never pruned. 0 where napari has no such list."""
    tasks = getattr(getattr(viewer.window, "_task_status_manager", None), "_tasks", None) or {}
    return sum(
        getattr(getattr(t, "_cancel_callback", None), "__self__", None) is not None
        for t in tasks.values()
    )


def census(viewer, objects: bool = False) -> dict:
    """What could pile up over runs, counted now (after a garbage collection). ``objects``: also
    the live Python objects of the kinds a run makes (a walk of the heap: a second or so).

    napari's notification pop-ups ("toasts") are counted apart, and left out of the Qt counts:
    napari starts a toast's 4 s dismiss timer only while its window is the active one (never
    under Xvfb without a window manager) and only for the newest toast, so they stay, one per
    notification, until dismissed; they are napari's, not this plugin's.
    """
    import psutil
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtCore import QObject
    from qtpy.QtWidgets import QApplication, QWidget
    from superqt.utils._qthreading import WorkerBase

    gc.collect()
    app = QApplication.instance()
    widgets = QApplication.allWidgets()
    toasts = [w for w in widgets if isinstance(w, NapariQtNotification)]
    qobjects = len(app.findChildren(QObject)) + sum(
        1 + len(w.findChildren(QObject)) for w in app.topLevelWidgets()
    )
    process = psutil.Process()
    out = {
        "rss_mb": process.memory_info().rss / 2**20,
        "layers": len(viewer.layers),
        "python_threads": threading.active_count(),
        "os_threads": process.num_threads(),
        "workers_running": len(WorkerBase._worker_set),
        "qt_widgets": len(widgets) - sum(1 + len(t.findChildren(QWidget)) for t in toasts),
        "qt_objects": qobjects - sum(1 + len(t.findChildren(QObject)) for t in toasts),
        "layer_list_callbacks": sum(
            len(e.callbacks) for e in viewer.layers.events.emitters.values()
        ),
        "notification_toasts": len(toasts),
        "napari_task_workers": napari_task_workers(viewer),
    }
    if objects:
        from matplotlib.figure import Figure
        from napari.layers import Layer
        from napari.qt.threading import GeneratorWorker

        kinds = {"live_layers": Layer, "live_workers": GeneratorWorker, "live_figures": Figure}
        counts = dict.fromkeys(kinds, 0)
        for obj in gc.get_objects():
            module = type(obj).__module__  # only these packages' (isinstance on torch's warns)
            if isinstance(module, str) and module.startswith(("napari", "matplotlib")):
                for name, kind in kinds.items():
                    counts[name] += isinstance(obj, kind)
        out.update(counts)
        out["live_workers_not_napari_tasks"] = out["live_workers"] - out["napari_task_workers"]
    return out


class Session:
    """A shown viewer with the three widgets docked and the clean image; :meth:`run` is one run.

    ``wait_until(condition, timeout_s)`` turns the event loop until ``condition()``."""

    def __init__(self, viewer, clean, wait_until) -> None:
        from qtpy.QtCore import QTimer

        self.viewer, self.wait_until = viewer, wait_until
        self.clean = viewer.add_image(clean, name="cells")
        _, self.simulate = viewer.window.add_plugin_dock_widget("napari-genprior", "Simulate")
        _, self.compare = viewer.window.add_plugin_dock_widget("napari-genprior", "Compare")
        _, self.widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
        self.simulate.layer.value = self.clean
        self.simulate.kind.value = "blur"
        self.simulate.noise_std.value = 5.0
        self.widget.confirm_seconds = None  # the long runs are cancelled, never paused
        self.results: list = []
        self.widget.result_added.connect(self.results.append)
        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))

    def pause(self, seconds: float = 0.1) -> None:
        """The user's pause between two clicks: what a click left for the event loop (a new
        layer's first draw, a plot's) is done there, not in the next click's time."""
        end = time.perf_counter() + seconds
        self.wait_until(lambda: time.perf_counter() >= end, 60)

    def run(self, i: int) -> dict:
        """Run ``i`` (from 0): simulate, reconstruct (a long dip run cancelled at its first
        preview when ``i`` is odd, else a short tv run), compare, delete the layers added.
        Returns the result's name, the seconds of each part, and the gaps between the timer's
        ticks (s) while the reconstruction ran and over the whole run."""
        viewer, widget, ticks = self.viewer, self.widget, self.ticks
        clock = time.perf_counter
        ticks.clear()
        ticks.append(clock())
        self.timer.start()
        t0 = clock()
        measurement, *rest = self.simulate.simulate()
        t1 = clock()
        self.pause()
        cancel = i % 2 == 1
        widget.layer.value = measurement
        widget.operator.value = "from the layer's metadata"
        widget.method.value = "dip" if cancel else "tv"
        widget.steps.value = 100_000 if cancel else 30
        widget.device.value = "cpu"
        widget.seed.value = i
        n = len(self.results)
        first = len(ticks)
        ticks.append(clock())
        t_run = clock()
        widget.start()
        if widget.worker is None:
            raise RuntimeError(f"run {i + 1} did not start: {widget.status.value}")
        if cancel:
            self.wait_until(
                lambda: any(lyr.name.endswith("[preview]") for lyr in viewer.layers), 60
            )
            widget.cancel()
        self.wait_until(lambda: widget.worker is None, 60)
        ticks.append(clock())
        last = len(ticks)
        t2 = clock()
        if len(self.results) != n + 1:
            raise RuntimeError(f"run {i + 1} added no result: {widget.status.value}")
        result = self.results.pop()
        self.compare.reference.value = self.clean
        self.compare.results.value = [result]
        self.compare.measurement.value = measurement
        self.compare.compare()
        if self.compare.rows[0]["psnr"] is None:
            raise RuntimeError(f"run {i + 1}: Compare scored nothing: {self.compare.rows}")
        t3 = clock()
        self.pause()
        name = result.name
        deleting = 0.0
        for layer in (result, *rest[::-1], measurement):
            # one at a time, drawn in between, as a user deletes them: napari 0.9.2 with
            # vispy 0.17 under Xvfb's software OpenGL crashed (a segfault in glDrawArrays) at
            # the next draw after two or more layers were removed between two draws
            t = clock()
            viewer.layers.remove(layer)
            deleting += clock() - t
            self.pause(0.05)
        ticks.append(clock())
        self.timer.stop()
        return {
            "result": name,
            "cancelled": cancel,
            "simulate_s": t1 - t0,
            "reconstruct_s": t2 - t_run,
            "compare_s": t3 - t2,
            "delete_layers_s": deleting,
            "run_gaps": [b - a for a, b in zip(ticks[first:last], ticks[first + 1 : last])],
            "all_gaps": [b - a for a, b in zip(ticks, ticks[1:])],
        }


def stall_figures(gaps: list[float]) -> dict:
    """The longest, median and 99th-percentile gap between ticks of the 10 ms timer (ms)."""
    gaps = sorted(gaps)
    pct = gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))]
    return {
        "longest_ms": 1000 * gaps[-1],
        "median_ms": 1000 * statistics.median(gaps),
        "p99_ms": 1000 * pct,
        "gaps": len(gaps),
        "over_target": sum(g > TARGET_MS / 1000 for g in gaps),
    }


def event_loop_waiter():
    """``wait_until(condition, timeout_s)``: turn the event loop (as napari does when idle, in
    ``QEventLoop.exec``) until ``condition()``, polled every 5 ms."""
    from qtpy.QtCore import QEventLoop, QTimer

    def wait_until(condition, timeout_s: float) -> None:
        loop = QEventLoop()
        poll = QTimer()
        poll.setInterval(5)
        poll.timeout.connect(lambda: loop.quit() if condition() else None)
        deadline = time.perf_counter() + timeout_s
        while not condition():
            if time.perf_counter() > deadline:
                raise TimeoutError(f"not within {timeout_s} s")
            poll.start()
            loop.exec()
            poll.stop()

    return wait_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--no-popups",
        action="store_true",
        help="napari's notification pop-ups off (the notifications still reach "
        "napari's notification manager): the memory without them",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import os

    import napari
    import numpy as np

    import napari_genprior
    from napari_genprior._io import read_tiff
    from napari_genprior._sample_data import NUCLEI, sample_path
    from napari_genprior._widgets._worker import warm_up

    if args.no_popups:
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        NapariQtNotification.show_notification = classmethod(lambda cls, notification: None)
    wait_until = event_loop_waiter()
    clean = read_tiff(sample_path(NUCLEI))[0][32:96, 32:96].astype(np.float32)
    viewer = napari.Viewer(show=True)
    session = Session(viewer, clean, wait_until)
    warm_up().join()
    session.pause(0.5)  # the window drawn, the docks tabbed

    def count(objects: bool) -> dict:
        return {
            **census(viewer, objects),
            "plot_lines": len(session.compare.history_plot.axes.lines),
        }

    records: dict[int, dict] = {0: count(True)}
    runs, run_gaps, all_gaps = [], [], []
    load_before = os.getloadavg()[0]
    t_all = time.perf_counter()
    for i in range(args.runs):
        run = session.run(i)
        run["longest_stall_ms"] = 1000 * max(run["run_gaps"])
        run["longest_stall_whole_run_ms"] = 1000 * max(run["all_gaps"])
        run_gaps += run.pop("run_gaps")
        all_gaps += run.pop("all_gaps")
        k = i + 1
        records[k] = count(k in CHECKPOINTS)  # between runs: not timed
        runs.append({"run": k, **run, **records[k]})
        r = records[k]
        print(
            f"run {k:2d} {run['result']:32s} {run['reconstruct_s']:5.2f} s, stall "
            f"{run['longest_stall_ms']:3.0f} ms, RSS {r['rss_mb']:.0f} MB, layers "
            f"{r['layers']}, threads {r['python_threads']}/{r['os_threads']}, workers "
            f"{r['workers_running']}, widgets {r['qt_widgets']}, Qt objects "
            f"{r['qt_objects']}, toasts {r['notification_toasts']}",
            flush=True,
        )
    total = time.perf_counter() - t_all
    load_after = os.getloadavg()[0]
    viewer.close()
    last = args.runs
    during, whole = stall_figures(run_gaps), stall_figures(all_gaps)
    early = 10 if last > 10 else 1
    grow = {k: records[last][k] - records[early][k] for k in records[early] if k in records[last]}
    steady = {k: grow[k] <= (QT_SLACK if k.startswith("qt_") else 0) for k in COUNTS if k in grow}
    steady["rss_mb"] = grow["rss_mb"] < RSS_SLACK_MB
    env = (
        f"{platform.machine()} CPU ({os.cpu_count()} cores), torch.set_num_threads("
        f"{args.threads}), torch {torch.__version__}, napari {napari.__version__}, "
        f"napari-genprior {napari_genprior.__version__}, Python "
        f"{platform.python_version()}, Xvfb; load average {load_before:.1f} before the "
        f"runs, {load_after:.1f} after)"
    )
    parts = {
        p: statistics.median(r[p] for r in runs)
        for p in ("simulate_s", "reconstruct_s", "compare_s", "delete_layers_s")
    }
    per_kind = {
        kind: max(r["longest_stall_ms"] for r in runs if r["cancelled"] == cancelled)
        for kind, cancelled in (("tv", False), ("dip, cancelled", True))
    }
    ok = during["longest_ms"] <= TARGET_MS
    shown = [k for k in sorted(records) if k in CHECKPOINTS or k == 0]
    keys = [
        "rss_mb",
        "layers",
        "python_threads",
        "os_threads",
        "workers_running",
        "qt_widgets",
        "qt_objects",
        "layer_list_callbacks",
        "plot_lines",
        "live_layers",
        "live_figures",
        "live_workers",
        "napari_task_workers",
        "notification_toasts",
    ]
    command = (
        f"xvfb-run -a python benchmarks/gui_steady.py --runs {last} --threads "
        f"{args.threads}{' --no-popups' if args.no_popups else ''}"
    )
    lines = [
        "# Steady over long use: 50 reconstructions in one viewer"
        + (" (napari's pop-ups off)" if args.no_popups else ""),
        "",
        f"{last} runs in a row in one shown viewer (Xvfb, software OpenGL) with Simulate, "
        "Compare and Reconstruct docked. Each run: Simulate a blurred, noisy 64x64 nuclei crop; "
        "Reconstruct it with previews on (odd runs: tv, 30 steps, to the end; even runs: dip, "
        "100,000 steps, cancelled at its first preview); Compare the result with the clean "
        "image; delete the result, the back-projection and the measurement, one by one. A "
        "10 ms timer records the event loop's ticks; a gap between two ticks is a stall."
        + (
            " napari's notification pop-ups are off in this run (`--no-popups`)."
            if args.no_popups
            else ""
        ),
        "",
        "## Event-loop stalls",
        "",
        "| while | gaps | longest (ms) | median (ms) | 99th percentile (ms) | over 200 ms |",
        "|---|---|---|---|---|---|",
        f"| a reconstruction runs (Run clicked to its result in the viewer) | {during['gaps']} "
        f"| {during['longest_ms']:.0f} | {during['median_ms']:.0f} | {during['p99_ms']:.0f} | "
        f"{during['over_target']} |",
        f"| the whole run, the user's clicks included | {whole['gaps']} | "
        f"{whole['longest_ms']:.0f} | {whole['median_ms']:.0f} | {whole['p99_ms']:.0f} | "
        f"{whole['over_target']} |",
        "",
        f"Longest stall while a reconstruction runs, by kind: tv {per_kind['tv']:.0f} ms, "
        f"dip cancelled {per_kind['dip, cancelled']:.0f} ms. Median seconds of a run's parts: "
        + ", ".join(f"{k[:-2].replace('_', ' ')} {v:.2f}" for k, v in parts.items())
        + ".",
        "",
        STALL_CAUSES,
        "",
        "## What is alive after run k (after `gc.collect()`)",
        "",
        "| after run | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for k in shown:
        r = records[k]
        lines.append(
            f"| {k} | "
            + " | ".join("-" if key not in r else f"{r[key]:.0f}" for key in keys)
            + " |"
        )
    lines.append(
        f"| growth {early} -> {last} | "
        + " | ".join("-" if key not in grow else f"{grow[key]:+.0f}" for key in keys)
        + " |"
    )
    lines += [
        "",
        "`qt_widgets` and `qt_objects` leave out napari's notification pop-ups, counted in "
        "`notification_toasts`. `live_workers` are napari `GeneratorWorker` objects alive; "
        "`napari_task_workers` those that napari's window keeps in its task list. The live "
        "objects are counted at runs 0, 1, 5, 10, 25 and 50 only (a walk of the heap).",
        "",
        "## What grows, and whose it is",
        "",
        "- `notification_toasts`: each run shows two info notifications (Reconstruct's "
        '"done" or "cancelled", Compare\'s "scored"). napari starts a pop-up\'s 4 s '
        "dismiss timer only while its window is the active one, and only the newest pop-up's, "
        "so under Xvfb (no window manager: never active) every pop-up stays; with a focused "
        "window they go one per about 4 s. "
        + (
            "They are off in this run."
            if args.no_popups
            else f"Here the resident memory grew {grow['rss_mb']:+.1f} MB with "
            f"{grow['notification_toasts']:+.0f} pop-ups from run {early} to run {last}; "
            "`--no-popups` runs the same without them."
        ),
        "- `napari_task_workers`: since napari 0.6.5 its window registers every "
        "`thread_worker` made while a viewer is open as a task, with `worker.quit` as its "
        "cancel callback (for the close-confirmation dialog), and never prunes the list: one "
        "finished worker (a few kB) a run. `live_workers_not_napari_tasks` (the plugin's) "
        "stays constant.",
        "- Deleting a layer costs napari's `gc.collect()` (its canvas runs one on every "
        "removal: 0.3-0.7 s in a process with torch, napari and matplotlib loaded): most of "
        "the longest stalls of the whole run.",
        "- The layers are deleted one at a time with a draw in between: napari 0.9.2 with "
        "vispy 0.17 under Xvfb's software OpenGL crashed (a segfault in `glDrawArrays`) at "
        "the next draw after two or more layers were removed between two draws, without this "
        "plugin (a loop of two `viewer.add_image` and two `viewer.layers.remove`).",
        "",
        "## Targets",
        "",
        f"- {'PASS' if ok else 'MISS'}: the longest stall while a reconstruction runs at most "
        f"{TARGET_MS:.0f} ms ({during['longest_ms']:.0f} ms; {during['over_target']} of "
        f"{during['gaps']} gaps over it)",
        f"- {'PASS' if steady['rss_mb'] else 'MISS'}: resident memory grows under "
        f"{RSS_SLACK_MB:.0f} MB from run {early} to run {last} ({grow['rss_mb']:+.1f} MB)",
        f"- {'PASS' if all(steady[k] for k in COUNTS if k in steady) else 'MISS'}: no count "
        f"of this plugin's grows from run {early} to run {last} ("
        + ", ".join(f"{k} {grow[k]:+.0f}" for k in COUNTS if k in grow)
        + f"; the Qt counts within {QT_SLACK})",
        "",
        f"Command: `{command}` ({total:.0f} s for the runs; {env}.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    name = (
        "gui-steady" + ("" if last == 50 else f"-{last}") + ("-no-popups" if args.no_popups else "")
    )
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    (args.out / f"{name}.json").write_text(
        json.dumps(
            {
                "stalls_during_reconstruction": during,
                "stalls_whole_run": whole,
                "longest_stall_ms_by_kind": per_kind,
                "median_part_seconds": parts,
                "records": {str(k): v for k, v in records.items()},
                "runs": runs,
                "growth": {"from": early, "to": last, **grow},
                "steady": steady,
                "target_ms": TARGET_MS,
                "rss_slack_mb": RSS_SLACK_MB,
                "qt_slack": QT_SLACK,
                "threads": args.threads,
                "no_popups": args.no_popups,
                "seconds": total,
                "command": command,
                "environment": env,
            },
            indent=1,
        )
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
