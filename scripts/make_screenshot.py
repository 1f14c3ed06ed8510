"""Make docs/screenshot.png: the demo viewer after a reconstruction (run under Xvfb).

    xvfb-run -a python scripts/make_screenshot.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch  # before Qt (a known torch/PyQt clash)

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshot.png"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from qtpy.QtWidgets import QApplication

    from napari_genprior._widgets.demo import open_demo

    viewer, widget = open_demo(steps=args.steps, run=True)
    viewer.window._qt_window.resize(1500, 760)
    app = QApplication.instance()
    while widget.worker is not None:
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid  # napari >= 0.9
    grid.enabled = True
    grid.shape = (1, len(viewer.layers))
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False, flash=False)
    print(f"wrote {args.out}: {', '.join(layer.name for layer in viewer.layers)}")
    viewer.close()


if __name__ == "__main__":
    main()
