import numpy as np
import pytest

from napari_genprior import metrics


def test_psnr_matches_the_formula():
    rng = np.random.default_rng(0)
    ref = rng.random((32, 32)) * 100
    img = ref + rng.normal(0, 2, ref.shape)
    mse = np.mean((img - ref) ** 2)
    expected = 10 * np.log10((ref.max() - ref.min()) ** 2 / mse)
    assert metrics.psnr(ref, img) == pytest.approx(expected)


def test_ssim_and_nmse_on_identical_and_different_images():
    rng = np.random.default_rng(1)
    ref = rng.random((40, 40))
    assert metrics.ssim(ref, ref) == pytest.approx(1.0)
    assert metrics.nmse(ref, ref) == 0.0
    assert metrics.ssim(ref, rng.random((40, 40))) < 0.2
    assert metrics.nmse(ref, 2 * ref) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "a, b, words",
    [
        (np.ones((4, 4)), np.ones((4, 5)), "shape"),
        (np.ones((4, 4)), np.full((4, 4), np.nan), "NaN"),
        (np.zeros((0, 0)), np.zeros((0, 0)), "empty"),
    ],
)
def test_metrics_reject_bad_pairs(a, b, words):
    with pytest.raises(ValueError, match=words):
        metrics.psnr(a, b)


def test_nmse_of_zero_reference_is_an_error():
    with pytest.raises(ValueError, match="all-zero"):
        metrics.nmse(np.zeros((3, 3)), np.ones((3, 3)))
