"""``dip``: Deep Image Prior reconstruction with an early-stopping rule that never sees the truth.

Rule: a random 5% of the observed measurement entries are held out. The network is fitted to the
other 95%; every ``check_every`` steps the misfit of the running average (EMA) of its outputs on
the held-out entries is measured, and the run stops when that validation misfit has not improved
for ``patience`` steps. The result is the EMA image at the best validation misfit. With fewer than
200 observed entries nothing is held out and all ``steps`` are run.
"""

from __future__ import annotations

from typing import Any

import torch

from ..operators.base import check_float, check_int
from ..priors import DIPNet, dip_depth
from .common import Problem, SolverGen, Update, split_holdout


def solve_dip(
    problem: Problem,
    *,
    steps: int = 2000,
    lr: float = 0.01,
    channels: int = 32,
    input_channels: int = 32,
    holdout: float = 0.05,
    patience: int = 300,
    check_every: int = 10,
    ema: float = 0.99,
    reg_noise: float = 1 / 30,
    preview_every: int = 10,
) -> SolverGen:
    """Fit a DIP network to the measurement; see the module docstring for the stopping rule."""
    if len(problem.shape) not in (2, 3):
        raise ValueError(
            f"method 'dip' reconstructs 2D images and 3D stacks; got shape {problem.shape}."
        )
    # a stack (Z, Y, X): one 2D network whose Z output channels are the planes, fitted to the
    # whole stack at once (so a 3D blur that mixes the planes is undone jointly)
    planes = problem.shape[0] if len(problem.shape) == 3 else None
    lr = check_float("lr", lr, low=0, low_open=True)
    channels = check_int("channels", channels, 1, 1024)
    input_channels = check_int("input_channels", input_channels, 1, 1024)
    holdout = check_float("holdout", holdout, low=0, high=0.5)
    patience = check_int("patience", patience, 1)
    check_every = check_int("check_every", check_every, 1)
    ema = check_float("ema", ema, low=0, high=0.9999)
    reg_noise = check_float("reg_noise", reg_noise, low=0)
    if min(problem.shape[-2:]) < 3:
        raise ValueError(
            f"method 'dip' needs images of at least 3x3 pixels (its network works "
            f"on several scales); got shape {problem.shape}. Use 'adjoint', or 'tv' "
            "with an explicit lam=, for such small images."
        )
    dev, y, A = problem.device, problem.y, problem.A
    gen = torch.Generator(device="cpu").manual_seed(problem.seed)

    train, held_f = split_holdout(problem, holdout)
    n_train, n_held = float(train.sum()), float(held_f.sum())

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(problem.seed)
        net = DIPNet(
            in_channels=input_channels,
            out_channels=planes or 1,
            channels=channels,
            depth=dip_depth(problem.shape),
        ).to(dev)
    z = (torch.rand((1, input_channels, *problem.shape[-2:]), generator=gen) * 0.1).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    avg = best_img = None
    best_val, since_best, stopped_at = float("inf"), 0, steps
    extra: dict[str, Any] = {}
    for step in range(1, steps + 1):
        z_in = z + reg_noise * torch.randn(z.shape, generator=gen).to(dev) if reg_noise else z
        out = net(z_in)[0] if planes else net(z_in)[0, 0]
        resid = (A(out) - y) * train
        loss = resid.abs().pow(2).sum() / n_train
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            out = out.detach()
            # running average of the outputs; its momentum warms up so that early, unfitted
            # outputs fade quickly (a short run is not dragged back to its first steps)
            beta = min(ema, (1 + step) / (10 + step))
            avg = out.clone() if avg is None else avg.mul_(beta).add_(out, alpha=1 - beta)
            if n_held and step % check_every == 0:
                val = float(((A(avg) - y) * held_f).abs().pow(2).sum() / n_held)
                if val < best_val:
                    best_val, best_img, since_best = val, avg.clone(), 0
                else:
                    since_best += check_every
        preview = problem.to_numpy(avg) if step % preview_every == 0 or step == steps else None
        keep_going = yield Update(step, steps, loss.item(), preview)
        if keep_going is False:
            extra["cancelled_at"] = step
            stopped_at = step
            break
        if n_held and since_best >= patience:
            stopped_at = step
            break
    extra.update(
        stopped_at=stopped_at,
        heldout_entries=int(n_held),
        best_validation_misfit=best_val if n_held else None,
    )
    return (best_img if best_img is not None else avg), extra
