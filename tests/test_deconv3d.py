"""3D deconvolution (issue 16): optics and bead PSFs, the 3D blur, volume reconstruction."""

import json

import numpy as np
import psfmodels
import pytest
import torch
from scipy import ndimage
from scipy.signal import fftconvolve

import napari_genprior as ngp
from napari_genprior.operators import from_spec, real_inner
from napari_genprior.operators.psf import bead_psf, check_optics, optics_psf, psf_size
from napari_genprior.tiling import Mosaic
from napari_genprior.volumes import nuclei_volume

OPTICS = {"na": 1.2, "wavelength": 0.52, "dxy": 0.1, "dz": 0.25}


def _fwhm(profile: np.ndarray, step: float) -> float:
    """Full width at half maximum of a single-peaked 1D profile (linear interpolation)."""
    half = profile.max() / 2
    above = np.nonzero(profile >= half)[0]
    lo, hi = above[0], above[-1]
    left = lo - 1 + (half - profile[lo - 1]) / (profile[lo] - profile[lo - 1])
    right = hi + (profile[hi] - half) / (profile[hi] - profile[hi + 1])
    return (right - left) * step


# -- PSFs ----------------------------------------------------------------------------------------


def test_the_optics_psf_is_psfmodels_own_output_normalised():
    shape = (9, 64, 64)
    psf = optics_psf(shape, OPTICS)
    nz, nxy, _ = psf.shape
    assert (nz, nxy) == psf_size(shape, OPTICS)[:2] and nz == 9 and nxy % 2 == 1
    ref = psfmodels.make_psf(
        nz, nxy, dxy=0.1, dz=0.25, NA=1.2, wvl=0.52, ns=1.33, ni=1.33, ni0=1.33, model="vectorial"
    )
    np.testing.assert_allclose(psf, ref / ref.sum(), rtol=1e-12, atol=1e-15)
    assert psf.sum() == pytest.approx(1.0)
    # centred: the brightest voxel is the middle one
    assert np.unravel_index(np.argmax(psf), psf.shape) == tuple(s // 2 for s in psf.shape)


@pytest.mark.parametrize("na,wavelength", [(1.2, 0.52), (0.8, 0.6)])
def test_the_lateral_fwhm_is_the_textbook_one(na, wavelength):
    dxy = 0.01
    psf = optics_psf(
        (201, 201),
        microscope="widefield",
        na=na,
        wavelength=wavelength,
        dxy=dxy,
        immersion_index=1.515,
        sample_index=1.515,
    )
    c = psf.shape[0] // 2
    fwhm = _fwhm(psf[c], dxy)
    assert fwhm == pytest.approx(0.51 * wavelength / na, rel=0.10)


def test_a_confocal_psf_is_narrower_than_the_widefield_one():
    wide = optics_psf((15, 64, 64), OPTICS)
    conf = optics_psf((15, 64, 64), {**OPTICS, "microscope": "confocal", "ex_wavelength": 0.488})
    # axially: the confocal PSF's planes away from focus hold far less of its energy
    assert conf.sum((1, 2))[0] < 0.3 * wide.sum((1, 2))[0]


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"na": 1.4, "immersion_index": 1.33}, "below the immersion index"),
        ({"dxy": 0}, "dxy"),
        ({"dz": -1}, "dz"),
        ({"wavelength": 520}, "wavelength"),
        ({"microscope": "lightsheet"}, "microscope"),
        ({"pixel": 0.1}, "does not take"),
    ],
)
def test_unphysical_optics_are_refused_by_name(bad, match):
    with pytest.raises(ValueError, match=match):
        check_optics({**OPTICS, **bad})
    with pytest.raises(ValueError, match=match):
        ngp.make_operator("blur", shape=(8, 32, 32), optics={**OPTICS, **bad})


def test_a_bead_image_gives_back_the_psf():
    true = optics_psf((15, 48, 48), OPTICS)  # 15 x 47 x 47, odd
    img = np.full((40, 160, 160), 5.0)  # background
    points = [(20.3, 40.6, 40.2), (19.7, 40.4, 115.8), (20.0, 115.0, 80.5)]
    half = np.array(true.shape) // 2
    for p in points:  # each bead at its sub-pixel position
        p = np.array(p)
        base = np.round(p).astype(int)
        bead = ndimage.shift(true, p - base, order=3, mode="constant")
        img[tuple(slice(b - h, b + h + 1) for b, h in zip(base, half))] += 1e5 * bead
    img = np.random.default_rng(0).poisson(img).astype(np.float64)
    psf = bead_psf(img, points=points, size=true.shape)
    assert psf.shape == true.shape and psf.sum() == pytest.approx(1.0)
    assert np.corrcoef(psf.ravel(), true.ravel())[0, 1] > 0.99
    # the brightest bead alone, without points, is centred too
    alone = bead_psf(img, size=true.shape)
    assert np.corrcoef(alone.ravel(), true.ravel())[0, 1] > 0.97
    assert np.unravel_index(np.argmax(alone), alone.shape) == tuple(half)


def test_bead_psf_refuses_what_it_cannot_use():
    img = np.zeros((20, 20))
    with pytest.raises(ValueError, match="no signal"):
        bead_psf(img)
    img[10, 10] = 1
    with pytest.raises(ValueError, match="odd"):
        bead_psf(img, size=4)
    with pytest.raises(ValueError, match="no bead lies"):
        bead_psf(img, points=[[1, 1]], size=9)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        bead_psf(img, points=[[1, 1, 1]])
    with pytest.raises(ValueError, match="NaN"):
        bead_psf(np.full((5, 5), np.nan))


# -- the 3D blur operator ------------------------------------------------------------------------


@pytest.mark.parametrize("boundary", ["zero", "periodic"])
def test_the_3d_optics_blur_has_an_exact_adjoint(boundary):
    A = ngp.make_operator("blur", shape=(7, 24, 20), optics=OPTICS, boundary=boundary)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(A.shape, generator=g, dtype=torch.float64)
    y = torch.randn(A.measurement_shape, generator=g, dtype=torch.float64)
    lhs, rhs = real_inner(A(x), y), real_inner(x, A.adjoint(y))
    assert float(abs(lhs - rhs)) <= 1e-10 * float(abs(lhs))


def test_the_optics_blur_spec_is_compact_and_rebuilds_the_same_operator():
    A = ngp.make_operator("blur", shape=(16, 64, 64), optics=OPTICS)
    spec = A.spec()
    text = json.dumps(spec)
    assert len(text) < 1000 and "psf" not in spec  # the optics, not the array
    B = from_spec(json.loads(text))
    np.testing.assert_array_equal(A.psf, B.psf)
    assert B.spec() == spec


def test_the_blur_is_fft_fast_and_equal_to_direct_convolution():
    rng = np.random.default_rng(0)
    x, psf = rng.random((6, 37, 29)), rng.random((5, 11, 9))
    A = ngp.make_operator("blur", shape=x.shape, psf=psf, boundary="zero")
    got = A(torch.from_numpy(x)).numpy()
    # the FFT is padded to fast sizes (here 42 x 48 x 40 rather than 41 x 47 x 37)
    assert A._fft_shape != tuple(s + k - 1 for s, k in zip(x.shape, psf.shape))
    np.testing.assert_allclose(got, fftconvolve(x, psf / psf.sum(), mode="same"), atol=1e-12)


@pytest.mark.parametrize(
    "psf,match",
    [
        (np.ones((3, 3)), "2D PSF does not describe"),
        (-np.ones((3, 3, 3)), "negative"),
        (np.full((3, 3, 3), np.nan), "NaN"),
        (np.ones((9, 3, 3)), "larger than the image"),
        (np.zeros((3, 3, 3)), "positive sum"),
    ],
)
def test_bad_psfs_are_refused_by_name(psf, match):
    with pytest.raises(ValueError, match=match):
        ngp.make_operator("blur", shape=(8, 16, 16), psf=psf)


def test_blur_needs_exactly_one_psf():
    with pytest.raises(ValueError, match="exactly one"):
        ngp.make_operator("blur", shape=(8, 16, 16), sigma=1, optics=OPTICS)


# -- volumes -------------------------------------------------------------------------------------


def test_a_stack_mosaic_gives_every_plane_its_own_codes():
    class Const(torch.nn.Module):
        latent_dim, image_shape, card = 2, (16, 16), {}

        def forward(self, z):
            return z[:, :1, None].expand(-1, 16, 16)

    M = Mosaic(Const(), (3, 28, 20), overlap=4)
    assert M.tiles == 3 * M.plane_tiles and M.latent_dim == M.tiles * 2
    z = torch.zeros(1, M.latent_dim)
    z.view(1, M.tiles, 2)[0, M.plane_tiles : 2 * M.plane_tiles, 0] = 1.0  # the second plane only
    out = M(z)
    assert out.shape == (1, 3, 28, 20)
    np.testing.assert_allclose(out[0, 1].numpy(), 1.0, atol=1e-6)
    assert float(out[0, [0, 2]].abs().max()) == 0.0
    # the tiles of an image, overlap-added again, give the image back
    x = torch.rand(2, 3, 28, 20)
    np.testing.assert_allclose(M.from_patches(M.tiles_of(x)).numpy(), x.numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def small_volume():
    x = nuclei_volume((12, 48, 48), voxel=(0.4, 0.2, 0.2), seed=1)
    # generated nuclei, dim at the border: the zero boundary is right here
    A = ngp.make_operator("blur", shape=x.shape, sigma=(2.0, 1.2, 1.2), boundary="zero")
    return x, A, A.measure(x, photons=300, seed=0)


def test_richardson_lucy_stops_near_its_best_iteration_without_the_truth(small_volume):
    from skimage.restoration import richardson_lucy

    x, A, y = small_volume
    rec = ngp.reconstruct(y, A, method="richardson-lucy", steps=300, device="cpu")
    ours = ngp.metrics.psnr(x, rec.image)
    assert rec.image.shape == x.shape and rec.params["iterations"] > 0
    assert ours > ngp.metrics.psnr(x, y) + 2.0
    # the same iteration with the truth in hand (our boundary-normalised RL, every count)
    oracle = max(
        ngp.metrics.psnr(
            x, ngp.reconstruct(y, A, method="richardson-lucy", steps=k, holdout=0.0).image
        )
        for k in (5, 10, 20, 40, 80)
    )
    assert ours > oracle - 1.0
    # scikit-image's, at its best count, ignores the stack's top and bottom: ours beats it
    sk = max(
        ngp.metrics.psnr(x, richardson_lucy(y.astype(np.float64), A.psf, num_iter=k, clip=False))
        for k in (5, 10, 20, 40, 80)
    )
    assert ours > sk


def test_richardson_lucy_refuses_operators_that_are_not_non_negative():
    A = ngp.make_operator("cs", shape=(16, 16), m=100, seed=0)
    y = A.measure(np.ones((16, 16)))
    with pytest.raises(ValueError, match="non-negative operator"):
        ngp.reconstruct(y, A, method="richardson-lucy")


def test_3d_tv_beats_plane_by_plane_deconvolution(small_volume):
    x, A, y = small_volume
    vol = ngp.reconstruct(y, A, method="tv", steps=100, search_steps=100, n_lams=4, device="cpu")
    # plane by plane with the in-focus plane of the PSF: cannot remove the other planes' light
    A2 = ngp.make_operator("blur", shape=x.shape[1:], psf=A.psf[A.psf.shape[0] // 2])
    planes = ngp.reconstruct_stack(
        y, A2, method="tv", steps=100, search_steps=100, n_lams=4, device="cpu"
    )
    assert ngp.metrics.psnr(x, vol.image) > ngp.metrics.psnr(x, planes.image) + 2.0


def test_a_2d_prior_reconstructs_a_stack_against_the_3d_operator():
    x = nuclei_volume((3, 64, 64), voxel=(0.5, 0.2, 0.2), seed=2)
    A = ngp.make_operator("blur", shape=x.shape, sigma=(1.0, 1.5, 1.5), boundary="zero")
    y = A.measure(x, noise_std=0.01, seed=0)
    seen = []
    rec = ngp.reconstruct(
        y,
        A,
        method="csgm",
        prior="nuclei-vae",
        steps=30,
        device="cpu",
        callback=lambda s, loss, im: seen.append(im is None or im.shape),
    )
    assert rec.image.shape == x.shape and np.isfinite(rec.image).all()
    assert rec.params["prior"]["mosaic"]["planes"] == 3
    assert (3, 64, 64) in seen  # 3D previews
    assert rec.history[-1] < rec.history[0]


def test_dip_reconstructs_a_stack_as_one_problem(small_volume):
    x, A, y = small_volume
    rec = ngp.reconstruct(y, A, method="dip", steps=15, channels=8, device="cpu")
    assert rec.image.shape == x.shape and np.isfinite(rec.image).all()


def test_the_generated_volume_is_reproducible_and_physical():
    a = nuclei_volume((16, 64, 64), seed=3)
    b = nuclei_volume((16, 64, 64), seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.min() > 0 and a.max() == pytest.approx(1.0)
    # nuclei cover a good part of the middle plane and little of the top one
    mid, top = (a[8] > 0.2).mean(), (a[0] > 0.2).mean()
    assert mid > 0.2 and top < mid
    with pytest.raises(ValueError, match="voxel"):
        nuclei_volume((4, 8, 8), voxel=(0, 1, 1))


def test_the_batch_command_deconvolves_stacks_as_volumes(tmp_path, capsys):
    from napari_genprior import cli
    from napari_genprior._io import read_tiff, write_tiff

    x = nuclei_volume((8, 32, 32), voxel=(0.3, 0.1, 0.1), seed=5)
    optics = {"na": 1.1, "wavelength": 0.52, "dxy": 0.1, "dz": 0.3}
    A = ngp.make_operator("blur", shape=x.shape, optics=optics)
    y = A.measure(x, photons=500, seed=0)
    (tmp_path / "in").mkdir()
    write_tiff(tmp_path / "in" / "stack.tif", y)
    rc = cli.main(
        [
            "batch",
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "out"),
            "--quiet",
            "--operator",
            "blur",
            "--volume",
            "--param",
            f"optics={json.dumps(optics)}",
            "--method",
            "richardson-lucy",
            "--steps",
            "100",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    out, meta = read_tiff(tmp_path / "out" / "stack.tif")
    assert out.shape == x.shape and meta["operator"]["shape"] == [8, 32, 32]
    # the same as the library on the whole volume
    ref = ngp.reconstruct(y, A, method="richardson-lucy", steps=100, device="cpu")
    np.testing.assert_allclose(out, ref.image, rtol=1e-5, atol=1e-6)
    # --volume on a 2D file says why it cannot
    write_tiff(tmp_path / "in" / "flat.tif", y[0])
    rc = cli.main(
        [
            "batch",
            str(tmp_path / "in" / "flat.tif"),
            "--out",
            str(tmp_path / "o2"),
            "--quiet",
            "--operator",
            "blur",
            "--volume",
            "--param",
            "sigma=1",
            "--method",
            "richardson-lucy",
        ]
    )
    assert rc == 1 and "a volume needs three axes" in capsys.readouterr().out


def test_the_deconv_3d_benchmark_runs_at_quick_size(tmp_path):
    import genprior_bench as bench

    bench.run_experiments(
        ["deconv-3d", "deconv-3d-scale"],
        quick=True,
        out=tmp_path,
        device="cpu",
        log=lambda line: None,
    )
    record = json.loads((tmp_path / "deconv-3d-quick.json").read_text())
    rows = record["data"]["quality"][0]["rows"]
    assert {
        "scikit-image RL (best count)",
        "richardson-lucy",
        "richardson-lucy (best count)",
        "tv",
        "dip",
        "csgm (nuclei-vae)",
        "plane by plane (richardson-lucy)",
    } <= set(rows)
    assert any("scikit-image RL" in claim for claim in record["checks"])
    scale = json.loads((tmp_path / "deconv-3d-scale-quick.json").read_text())["data"]["scale"]
    assert all("error" not in r and r["peak_gib"] > 0 for r in scale)


def test_a_large_volume_searches_its_weight_one_weight_at_a_time(monkeypatch, small_volume):
    from napari_genprior.solvers import _weight_search

    x, A, y = small_volume
    # (no camera model: the search's mechanics on the data as they are)
    opts = {"steps": 30, "search_steps": 30, "n_lams": 4, "camera": None}
    lasso = ngp.reconstruct(y, A, method="lasso-dct", **opts)
    # (the held-out rule for tv: a blur's default is now the early rule, below)
    tv = ngp.reconstruct(
        y, A, camera=None, method="tv", n_lams=8, rule="holdout"
    )  # batched, 300 steps a weight
    monkeypatch.setattr(_weight_search, "SEARCH_BATCH_VOXELS", 0)  # as if it were too large
    updates = []
    chunked = ngp.reconstruct(
        y, A, method="lasso-dct", callback=lambda s, loss, im: updates.append(s), **opts
    )
    # a lasso starts every weight from zero: the same weight from the same held-out misfits,
    # with the same result
    assert chunked.params["lam"] == lasso.params["lam"]
    np.testing.assert_allclose(
        chunked.params["heldout_misfit"], lasso.params["heldout_misfit"], rtol=1e-4
    )
    np.testing.assert_allclose(chunked.image, lasso.image, rtol=1e-4, atol=1e-5)
    assert len(updates) > len(lasso.history)  # four searches, one after another
    # tv follows a path from the largest weight down, each warm-started from the one before,
    # with at most 50 steps a weight: as good as the batched search run to 300 steps a weight
    path = ngp.reconstruct(y, A, camera=None, method="tv", n_lams=8, rule="holdout")
    assert path.params["search_iterations"] <= 50 < tv.params["search_iterations"]
    grid = path.params["lam_grid"]
    assert abs(grid.index(path.params["lam"]) - grid.index(tv.params["lam"])) <= 1
    assert ngp.metrics.psnr(x, path.image) > ngp.metrics.psnr(x, tv.image) - 0.3
    # and the same path with too few steps a weight does not run away (it did when a weight
    # inherited the step lengths adapted to the one before: held-out misfits 8000x too large)
    short = ngp.reconstruct(
        y, A, camera=None, method="tv", n_lams=8, search_steps=30, rule="holdout"
    )
    assert max(short.params["heldout_misfit"]) < 2 * max(tv.params["heldout_misfit"])


def test_the_early_rule_on_a_large_volume_runs_one_weight_at_a_time_and_chooses_alike(
    monkeypatch, small_volume
):
    from napari_genprior.solvers import _tv_fista

    x, A, y = small_volume
    batched = ngp.reconstruct(y, A, camera=None, method="tv")
    assert batched.params["rule"] == "early"
    monkeypatch.setattr(_tv_fista, "SEARCH_BATCH_VOXELS", 0)  # as if it were too large
    chunked = ngp.reconstruct(y, A, camera=None, method="tv")
    # the largest weight first; each stops 20 steps after the best of all so far
    assert chunked.params["lam"] == batched.params["lam"]
    assert abs(chunked.params["iterations"] - batched.params["iterations"]) <= 2
    assert ngp.metrics.psnr(x, chunked.image) > ngp.metrics.psnr(x, batched.image) - 0.1
