"""training.residual_ensemble: the served residual is the mean of its members' residuals, over
the members that serve each element, kept only where that mean beats the fast fit alone on the
held-out pixels; saved and rebuilt as an artifact like any model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training import artifacts
from training.residual import Prepared, ResidualConfig, ResidualNet
from training.residual_ensemble import LONG_SCHEDULE, ResidualEnsemble, combine, members

N, HELD = 10, np.arange(10) >= 5  # the last five pixels are held out


def member(seed: int, keep: list[float]) -> ResidualNet:
    torch.manual_seed(seed)
    net = ResidualNet(0, 40, 4, outputs=2, hidden=4)
    with torch.no_grad():
        net.keep.copy_(torch.tensor(keep))
        net.linear.weight.normal_()
    return net.eval()


def trained(net: ResidualNet, held_residual: list[float]) -> tuple:
    kept = {e: bool(k) for e, k in zip("AB", net.keep.tolist(), strict=True)}
    metrics = {"held_out": {"spectra": 5, "train_spectra": 5, "fast_fit+residual": {}},
               "config": {"seed": 0}, "epochs": 1, "residual_kept": kept,
               "refit_on_all_pixels": False, "live_time_s": [0.01, 0.01]}
    return net, metrics, np.tile(np.float32(held_residual), (5, 1))


def prepared() -> Prepared:
    """Fast fit 0 everywhere; truth A = 1 and B = 0 on the held-out pixels."""
    rng = np.random.default_rng(0)
    targets = np.zeros((N, 2), np.float32)
    targets[HELD, 0] = 1.0
    return Prepared(rng.uniform(0, 9, (N, 10)).astype(np.float32), np.zeros((N, 2), np.float32),
                    np.ones((N, 2), np.float32), np.full(N, 0.01, np.float32), targets)


def test_mean_over_the_members_that_serve_kept_where_it_beats_the_fast_fit():
    """A: both members serve it, residuals 2 and 0, mean 1 = the truth: served, 1/2 each.
    B: only the first serves it, with 0.5 where the truth is 0 (the fast fit is exact):
    not served, though that member alone kept it."""
    p, a, b = prepared(), member(1, [1.0, 1.0]), member(2, [1.0, 0.0])
    ens, metrics = combine([trained(a, [2.0, 0.5]), trained(b, [0.0, 0.0])], p, HELD, ("A", "B"))
    assert metrics["residual_kept"] == {"A": True, "B": False}
    np.testing.assert_array_equal(ens.weight.numpy(), [[0.5, 0.0], [0.5, 0.0]])
    assert metrics["held_out"]["fast_fit+residual"]["A"]["rmse"] == pytest.approx(0.0, abs=1e-9)
    assert [m["residual_kept"] for m in metrics["members"]] == [
        {"A": True, "B": True}, {"A": True, "B": False}]
    rates = torch.from_numpy(np.random.default_rng(1).uniform(0, 9, (6, 40)).astype(np.float32))
    areas, sigma = torch.rand(6, 2), torch.ones(6, 2)
    with torch.no_grad():
        want = 0.5 * (a(rates, areas, sigma) + b(rates, areas, sigma))
        got = ens(rates, areas, sigma)
    assert float(got[:, 0].abs().max()) > 0  # the members' residuals are not zero
    torch.testing.assert_close(got[:, 0], want[:, 0])
    assert torch.equal(got[:, 1], torch.zeros(6))
    assert ens.serves.tolist() == [True, False]


def test_members_share_features_and_rebuild_from_an_artifact(tmp_path):
    with pytest.raises(ValueError, match="same features"):
        ResidualEnsemble([member(1, [1.0, 1.0]), ResidualNet(0, 80, 8, outputs=2, hidden=4)])
    ens = ResidualEnsemble([member(1, [1.0, 1.0]), member(2, [0.0, 1.0])])
    with torch.no_grad():
        ens.weight.copy_(torch.tensor([[1.0, 0.5], [0.0, 0.5]]))
    info = {"kind": "elements", "grid": {}, "outputs": ["A", "B"], "units": "counts/s",
            "train_data": {}, "metrics": {}}
    artifacts.save("elements", ens, info, tmp_path)
    back, _ = artifacts.load("elements", tmp_path)
    assert isinstance(back, ResidualEnsemble) and len(back.members) == 2
    rates, areas = torch.rand(4, 40) * 9, torch.rand(4, 2)
    with torch.no_grad():
        torch.testing.assert_close(back(rates, areas, areas), ens(rates, areas, areas))


def test_members_are_the_base_its_linear_branch_trained_and_a_longer_schedule():
    base = ResidualConfig(epochs=4, seed=3)
    cfgs = members(base)
    assert cfgs[0] == base
    assert (cfgs[1].linear_wd, cfgs[1].epochs) == (0.0, 4)
    assert (cfgs[2].linear_wd, cfgs[2].epochs) == (None, round(4 * LONG_SCHEDULE)) == (None, 30)
    assert {c.seed for c in cfgs} == {3}
