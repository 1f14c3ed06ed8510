"""Latent-space methods on the random expansive ReLU prior (the setting of the theory)."""

import numpy as np
import pytest
import torch

import napari_genprior as ngp
from napari_genprior.solvers.latent import PLATEAU_TOL

K = 10


@pytest.fixture(scope="module")
def G():
    return ngp.random_prior(latent_dim=K, widths=(250, 600), seed=0)


def _truth(G, trial):
    z0 = torch.randn(K, generator=torch.Generator().manual_seed(100 + trial))
    with torch.no_grad():
        return z0, G(z0[None])[0].numpy()


def _latent_error(rec, z0):
    z = torch.tensor(rec.params["latent"])
    return float((z - z0).norm() / z0.norm())


def test_twist_recovers_the_latent_code_from_10k_gaussian_measurements(G):
    errors = []
    for trial in range(20):
        z0, x0 = _truth(G, trial)
        A = ngp.make_operator("cs", shape=x0.shape, m=10 * K, seed=trial)
        rec = ngp.reconstruct(
            A.measure(x0, seed=0), A, method="twist", prior=G, steps=1000, seed=trial, device="cpu"
        )
        errors.append(_latent_error(rec, z0))
    assert np.mean(np.array(errors) < 1e-3) >= 0.95, errors


def test_plain_descent_can_be_caught_near_minus_rho_z0_and_the_twist_escapes(G):
    # The reason for the twist: expansive ReLU nets have a spurious critical point near
    # -rho * z0. Started on that side (at -z0), plain gradient descent ends there in some
    # problems (here 2 of these 8); the twist compares f(z) with f(-z), jumps, and reaches z0
    # in all of them.
    caught = 0
    for trial in range(8):
        z0, x0 = _truth(G, trial)
        A = ngp.make_operator("cs", shape=x0.shape, m=10 * K, seed=trial)
        y = A.measure(x0, seed=0)
        start = (-z0).numpy()
        plain = ngp.reconstruct(
            y, A, method="twist", prior=G, steps=500, init=start, twist=False, seed=0, device="cpu"
        )
        twist = ngp.reconstruct(
            y, A, method="twist", prior=G, steps=500, init=start, seed=0, device="cpu"
        )
        assert twist.params["flips"] >= 1 and _latent_error(twist, z0) < 1e-3
        if _latent_error(plain, z0) > 0.5:
            z = torch.tensor(plain.params["latent"])
            cosine = float(z @ z0 / (z.norm() * z0.norm()))
            assert cosine < -0.7 and 0.2 < float(z.norm() / z0.norm()) < 0.9  # near -rho z0
            caught += 1
    assert caught >= 2


def test_phase_retrieval_with_a_random_prior_at_m_20k(G):
    errors = []
    for trial in range(10):
        z0, x0 = _truth(G, trial)
        A = ngp.make_operator("phase", shape=x0.shape, m=20 * K, seed=trial)
        rec = ngp.reconstruct(
            A.measure(x0, seed=0), A, method="twist", prior=G, steps=1000, seed=trial, device="cpu"
        )
        errors.append(np.linalg.norm(rec.image - x0) / np.linalg.norm(x0))
    assert np.mean(np.array(errors) < 1e-2) >= 0.9, errors


def test_csgm_with_batched_restarts_reports_a_spread_and_the_best_restart(G):
    z0, x0 = _truth(G, 0)
    A = ngp.make_operator("phase", shape=x0.shape, m=20 * K, seed=0)
    y = A.measure(x0, seed=0)
    rec = ngp.reconstruct(
        y, A, method="csgm", prior=G, restarts=6, steps=400, lam=0.0, seed=0, device="cpu"
    )
    assert rec.spread is not None and rec.spread.shape == x0.shape
    misfits = rec.params["restart_misfits"]
    assert len(misfits) == 6 and rec.params["best_restart"] == int(np.argmin(misfits))
    assert np.linalg.norm(rec.image - x0) / np.linalg.norm(x0) < 1e-2
    single = ngp.reconstruct(y, A, method="csgm", prior=G, steps=5, seed=0, device="cpu")
    assert single.spread is None


def test_restarts_are_one_batch_not_a_loop(G, monkeypatch):
    # every generator call sees all restarts at once
    z0, x0 = _truth(G, 1)
    A = ngp.make_operator("cs", shape=x0.shape, m=10 * K, seed=1)
    sizes = []
    orig = type(G).forward

    def spy(self, z):
        sizes.append(z.shape[0])
        return orig(self, z)

    monkeypatch.setattr(type(G), "forward", spy)
    ngp.reconstruct(
        A.measure(x0, seed=0), A, method="csgm", prior=G, restarts=7, steps=3, device="cpu"
    )
    assert sizes and set(sizes) == {7}


def test_sparse_gen_fits_images_just_outside_the_range(G):
    z0, x0 = _truth(G, 2)
    x = x0.copy()
    rng = np.random.default_rng(0)
    spikes = rng.choice(x.size, 8, replace=False)
    x.reshape(-1)[spikes] += 3 * x0.max()
    A = ngp.make_operator("cs", shape=x.shape, m=300, seed=2)
    y = A.measure(x, seed=0)
    common = dict(prior=G, restarts=3, steps=1500, seed=0, device="cpu")
    sg = ngp.reconstruct(y, A, method="sparse-gen", **common)
    cs = ngp.reconstruct(y, A, method="csgm", lam=0.0, **common)
    err = lambda r: np.linalg.norm(r.image - x) / np.linalg.norm(x)  # noqa: E731
    assert err(sg) < 0.5 * err(cs), (err(sg), err(cs))


def test_csgm_cancel_returns_the_best_so_far(G):
    z0, x0 = _truth(G, 3)
    A = ngp.make_operator("cs", shape=x0.shape, m=10 * K, seed=3)
    rec = ngp.reconstruct(
        A.measure(x0, seed=0),
        A,
        method="csgm",
        prior=G,
        restarts=3,
        steps=1000,
        device="cpu",
        callback=lambda s, loss, i: s < 20,
    )
    assert rec.cancelled and rec.params["iterations"] == 20 and np.all(np.isfinite(rec.image))


def test_csgm_stops_on_a_plateau_and_patience_none_runs_every_step(G):
    z0, x0 = _truth(G, 5)
    A = ngp.make_operator("cs", shape=x0.shape, m=10 * K, seed=5)
    y = A.measure(x0, seed=0)
    common = dict(method="csgm", prior=G, steps=2000, device="cpu", seed=0)
    flat = ngp.reconstruct(y, A, patience=50, **common)
    stop = flat.params["stopped_at"]
    assert len(flat.history) == stop < 2000
    # the rule: the best misfit fell by less than PLATEAU_TOL over the last 50 steps, not before
    h = np.minimum.accumulate(flat.history)
    assert h[stop - 1] > (1 - PLATEAU_TOL) * h[stop - 51]
    assert all(h[s - 1] <= (1 - PLATEAU_TOL) * h[s - 51] for s in range(51, stop))
    full = ngp.reconstruct(y, A, patience=None, **{**common, "steps": stop + 30})
    assert len(full.history) == stop + 30 and "stopped_at" not in full.params
    # the steps after the plateau change the result little
    err = lambda r: np.linalg.norm(r.image - x0) / np.linalg.norm(x0)  # noqa: E731
    assert err(flat) < 1.5 * err(full) + 1e-3
    with pytest.raises(ValueError, match="patience"):
        ngp.reconstruct(y, A, patience=0, **common)


def test_prior_given_by_path_is_loaded(G, tmp_path):
    G.save(tmp_path / "rp.safetensors")
    z0, x0 = _truth(G, 4)
    A = ngp.make_operator("cs", shape=x0.shape, m=10 * K, seed=4)
    rec = ngp.reconstruct(
        A.measure(x0, seed=0),
        A,
        method="twist",
        prior=str(tmp_path / "rp.safetensors"),
        steps=500,
        device="cpu",
    )
    assert np.linalg.norm(rec.image - x0) / np.linalg.norm(x0) < 1e-3
    assert rec.params["prior"]["architecture"] == "random-relu"


def test_the_users_prior_is_not_modified(G):
    before = {k: v.clone() for k, v in G.state_dict().items()}
    z0, x0 = _truth(G, 5)
    A = ngp.make_operator("cs", shape=x0.shape, m=10 * K, seed=5)
    ngp.reconstruct(A.measure(x0, seed=0), A, method="csgm", prior=G, steps=5, device="cpu")
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert all(p.requires_grad for p in G.parameters())


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(method="csgm"), ValueError, "needs a prior"),
        (dict(method="csgm", prior="no-such"), ValueError, "no prior named"),
        (dict(method="csgm", prior=object()), TypeError, "generator"),
        (dict(method="csgm", prior="SHAPE"), ValueError, "images of shape"),
        (dict(method="twf", prior=None), ValueError, "magnitude-only"),
        (dict(method="csgm", prior="G", restarts=0), ValueError, "restarts"),
        (dict(method="csgm", prior="G", y=np.full((100,), np.nan)), ValueError, "NaN"),
        (dict(method="csgm", prior="G", optimizer="sgd"), ValueError, "optimizer"),
    ],
)
def test_bad_arguments_raise_a_sentence(G, kwargs, error, words):
    A = ngp.make_operator("cs", shape=(1, 600), m=100, seed=0)
    args = dict(y=np.zeros(100, np.float32), steps=2, device="cpu")
    args.update(kwargs)
    if args.get("prior") == "G":
        args["prior"] = G
    elif args.get("prior") == "SHAPE":
        args["prior"] = ngp.random_prior(4, (10, 16), image_shape=(4, 4))
    with pytest.raises(error, match=words):
        ngp.reconstruct(args.pop("y"), A, **args)


def test_csgm_with_lbfgs(G):
    z0, x0 = _truth(G, 6)
    A = ngp.make_operator("cs", shape=x0.shape, m=10 * K, seed=6)
    rec = ngp.reconstruct(
        A.measure(x0, seed=0),
        A,
        method="csgm",
        prior=G,
        restarts=4,
        steps=100,
        optimizer="lbfgs",
        lr=1.0,
        lam=0.0,
        seed=0,
        device="cpu",
    )
    assert np.linalg.norm(rec.image - x0) / np.linalg.norm(x0) < 1e-3


def test_sparse_gen_in_wavelets_fits_a_wavelet_sparse_departure_from_the_range():
    import torch

    from napari_genprior.solvers._classical_ops import Wavelet

    G = ngp.load_prior("digits-vae")
    with torch.no_grad():
        x0 = G(torch.randn(1, G.latent_dim, generator=torch.Generator().manual_seed(1)))[0]
    W = Wavelet((28, 28), "haar", 2)
    c = torch.zeros((1, *W.coeff_shape))
    c.view(-1)[torch.tensor([200, 351, 500, 620])] = 0.8  # a few detail coefficients
    c[:, ~W.shrink] = 0
    x = (x0 + W.inverse(c)[0]).numpy()
    A = ngp.make_operator("cs", shape=(28, 28), m=400, seed=0)
    y = A.measure(x, seed=0)
    common = dict(prior=G, restarts=3, steps=800, seed=0, device="cpu")
    sg = ngp.reconstruct(y, A, method="sparse-gen", basis="wavelet", **common)
    cs = ngp.reconstruct(y, A, method="csgm", **common)
    err = lambda r: np.linalg.norm(r.image - x) / np.linalg.norm(x)  # noqa: E731
    assert sg.params["basis"] == "wavelet"
    assert err(sg) < 0.7 * err(cs), (err(sg), err(cs))
    with pytest.raises(ValueError, match="basis"):
        ngp.reconstruct(y, A, method="sparse-gen", basis="curvelet", **common)


@pytest.mark.parametrize("restarts", [1, 2])
def test_csgm_returns_its_least_misfit_iterate_not_its_last(G, restarts):
    """A long Adam step oscillates: the loss reported (the least misfit so far) never rises,
    and the image returned is the iterate of that least misfit (one restart: chosen on the host;
    several: by ``torch.where``), not the last."""
    z0, x0 = _truth(G, 4)
    A = ngp.make_operator("cs", shape=x0.shape, m=10 * K, seed=4)
    y = A.measure(x0, seed=0)
    rec = ngp.reconstruct(
        y, A, method="csgm", prior=G, restarts=restarts, steps=60, lr=0.8, lam=0.0, device="cpu"
    )
    history = np.array(rec.history)
    assert np.all(np.diff(history) <= 0), history
    scale = rec.params["scale"]
    residual = A.forward(torch.as_tensor(rec.image)[None]).numpy()[0] - y
    misfit = float(np.sum(residual**2)) / scale**2
    assert misfit == pytest.approx(history[-1], rel=1e-3)
    assert min(rec.params["restart_misfits"]) == pytest.approx(history[-1], rel=1e-6)
