"""ngp.rerun: a result run again from its record (issue 33)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_genprior as ngp


def test_rerun_reproduces_a_result_and_explains_what_it_lacks():
    x = np.zeros((32, 32))
    x[8:24, 8:24] = 1.0
    A = ngp.make_operator("inpaint", shape=x.shape, fraction=0.6, seed=0)
    y = A.measure(x, noise_std=0.05, seed=0)
    rec = ngp.reconstruct(y, A, method="tv", steps=40, device="cpu", seed=3)
    again = ngp.rerun(rec, measurement=y)
    np.testing.assert_array_equal(again.image, rec.image)
    assert again.params["options"] == rec.params["options"] and again.params["seed"] == 3
    # a layer's metadata: the record under "genprior", with the measurement embedded
    from napari_genprior.api._rerun import embed_measurement

    meta = {"genprior": {**rec.params, "measurement": embed_measurement(y)}}
    np.testing.assert_array_equal(ngp.rerun(np.zeros(1), meta).image, rec.image)
    with pytest.raises(ValueError, match="does not hold its measurement"):
        ngp.rerun(rec)
    with pytest.raises(ValueError, match="not a reconstruction's record"):
        ngp.rerun({"genprior": {"role": "measurement"}})
    session = {**rec.params, "method": "csgm", "prior": {"source": None}}
    with pytest.raises(ValueError, match="pass it as prior="):
        ngp.rerun(session, measurement=y)
