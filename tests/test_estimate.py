"""The widget's cost estimate (``_widgets._checks.checked_run``): at the method's typical share
of its steps, the maximum said beside it (issue 33; benchmarks/estimate.py measures it)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from napari_genprior._recommend import DEFAULT_STEPS, TYPICAL_SHARE, typical_share
from napari_genprior._widgets._checks import Stopped, checked_run


def _run(total: int):
    for step in range(1, total + 1):
        time.sleep(0.002)
        reply = yield SimpleNamespace(step=step, total=total, plane=0, planes=1, loss=1.0)
        if reply is False:
            break
    return "finished"


def test_the_estimate_assumes_the_typical_share_and_says_the_maximum():
    wrapped = checked_run(_run(1000), None, confirm_after=0.0, probe=0.05, typical=0.25)
    with pytest.raises(StopIteration) as stop:
        while True:
            next(wrapped)
    s = stop.value.value
    assert isinstance(s, Stopped) and s.reason == "slow" and s.steps_total == 1000
    assert s.per_step >= 0.002 and s.elapsed >= 0.05  # the pace of the steps, measured
    assert s.estimate == pytest.approx(s.elapsed + s.per_step * (250 - s.steps_done))
    assert s.most == pytest.approx(s.elapsed + s.per_step * (1000 - s.steps_done))
    assert s.estimate < s.most / 2
    assert "at most" in s.messages[0] and "Continue" in s.messages[0]
    # the paused run resumes where it stopped
    assert next(s.run).step == s.steps_done + 1


def test_typical_shares_are_shares_of_known_methods():
    assert typical_share("tv", "denoise") == 0.1 and typical_share("tv", "inpaint") == 0.25
    assert typical_share("csgm", "blur") == 0.9 and typical_share("ia", "blur") == 1.0
    for method, share in TYPICAL_SHARE.items():
        assert method in DEFAULT_STEPS
        values = share.values() if isinstance(share, dict) else [share]
        assert all(0 < v <= 1 for v in values)
