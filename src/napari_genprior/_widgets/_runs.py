"""Starting, cancelling and finishing a worker run: what the Reconstruct and Train widgets share.

Both run an API generator (:func:`~napari_genprior.api.iter_reconstruct_stack`,
:func:`~napari_genprior.api.iter_train`) in a worker made by :func:`._worker.make_worker`, one
run at a time, with a start button disabled while it runs, a Cancel button enabled only then,
and a status line. What each shows of an update stays its own: Reconstruct coalesces previews
(an update that arrives while one is being shown replaces any other that waits), while Train
records every loss update before it shows the newest.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ._worker import make_worker


class RunControls:
    """Mixin for a dock widget (a magicgui ``Container``) that runs one generator at a time.

    The widget sets ``_start_button`` (its Run or Train button) and has ``cancel_button`` and
    ``status`` (a label); it defines ``_on_update`` and ``_on_done`` (see
    :func:`._worker.make_worker`), the messages below, and ``_notify(level, message)``, which
    shows a notification with its own module's ``show_warning`` / ``show_error`` (looked up
    there when called: tests patch them there).
    """

    worker: Any = None
    """The running worker, or None."""
    _start_button: Any
    cancel_button: Any
    status: Any
    #: Shown (a warning) when the start button is clicked while a run is going on.
    _already_running: str
    #: The status line after Cancel.
    _cancelling: str
    #: The error notification when a run fails starts with this.
    _failure: str

    def _notify(self, level: str, message: str) -> None:
        raise NotImplementedError  # pragma: no cover - each widget's own

    def _refuse_while_running(self) -> bool:
        """Whether a run is going on (then say so): a start does nothing then."""
        if self.worker is not None:
            self._notify("warning", self._already_running)
            return True
        return False

    def _start_worker(self, run: Generator, status: str, pbar: Any = None) -> None:
        """Start ``run`` in a worker (``pbar``, a napari ``progress``, is closed when it ends)."""
        self.worker = make_worker(self, run, pbar)
        self._start_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = status
        self.worker.start()

    def cancel(self) -> None:
        """Ask the run to stop after its current step (Train: epoch); what it has is kept."""
        if self.worker is not None:
            self.worker.cancel()
            self.status.value = self._cancelling

    # -- worker callbacks (main thread) ------------------------------------------------------
    def _on_error(self, exc: Exception) -> None:
        self._notify("error", f"{self._failure}: {exc}")
        self.status.value = f"failed: {exc}"

    def _on_finished(self) -> None:
        self.worker = None
        self._start_button.enabled = True
        self.cancel_button.enabled = False
