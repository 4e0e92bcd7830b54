"""scripts/residual_paintings.py and the residual's recipe fields: what the README's table of
residual recipes on unseen paintings and on m6_ioannis is made with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from proto.elements import ELEMENTS
from tests.element_support import fit_m6 as _fit
from tests.element_support import tiny_m6
from training.residual import ResidualConfig


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return tiny_m6(tmp_path_factory.mktemp("tiny_m6"))


def test_residual_paintings_scores_each_painting_held_out(tiny_data):
    """scripts/residual_paintings.py (the residual's recipe): one row per painting and element
    it holds, a column per recipe and one for the ensemble of the default's members, the
    least-error tally over those rows; with a test scene, each recipe trained on the whole
    corpus and scored there; a scene of one painting is refused."""
    from scripts.residual_paintings import compare_recipes, recipes, score_on

    lines: list[str] = []
    cfgs = recipes(["wd=1e-5", "linear_wd=0,epochs=2"], ResidualConfig(epochs=1, hidden=8))
    assert list(cfgs) == ["default", "wd=1e-5", "linear_wd=0,epochs=2"]
    assert cfgs["linear_wd=0,epochs=2"].linear_wd == 0.0
    assert cfgs["linear_wd=0,epochs=2"].epochs == 2 and cfgs["wd=1e-5"].wd == 1e-5
    corpus = tiny_data / "m6_corpus_tiny.h5"
    wins, p = compare_recipes(_fit(), corpus, cfgs, out=lines.append)
    rows = [line.split(" | ") for line in lines if line.startswith("| corpus_")]
    assert {r[0] for r in rows} == {"| corpus_0", "| corpus_1", "| corpus_2", "| corpus_3"}
    assert all(len(r) == 7 and r[1] in ELEMENTS for r in rows)
    assert len(wins) == 5 and sum(wins) == len(rows)  # each recipe's, then ties
    assert lines[-1].startswith(f"least error: default in {wins[0]}, wd=1e-5 in {wins[1]}, "
                                f"linear_wd=0,epochs=2 in {wins[2]}, ensemble in {wins[3]}, "
                                f"tied in {wins[4]}, "
                                f"of {len(rows)} (")
    test = tiny_data / "m6_ioannis_tiny.h5"
    held = np.zeros(len(p.live), bool)
    held[-len(held) // 5:] = True
    scores = score_on(_fit(), corpus, p, held, test, cfgs, out=lines.append)
    assert list(scores) == ["fast fit", *cfgs, "ensemble"]
    table = [line.split(" | ") for line in lines if line.startswith(("| fast fit", "| default",
                                                                     "| wd=", "| linear_wd",
                                                                     "| ensemble"))]
    assert len(table) == 10 and all(len(r) == 2 + len(ELEMENTS) for r in table)
    with pytest.raises(ValueError, match=r"painting\(s\); holding one out needs two"):
        compare_recipes(_fit(), test, cfgs, out=lines.append)
    with pytest.raises(ValueError, match="'decay' is not a ResidualConfig field"):
        recipes(["decay=1"], ResidualConfig())


def test_linear_branch_trains_only_with_its_own_decay():
    """ResidualConfig.linear_wd: None keeps the closed-form linear branch as solved; a decay
    trains it with the MLP; residual_of on prepared pixels is the net's own forward."""
    from training.residual import feature_layout, prepare, residual_of, train_prepared

    fit = _fit()
    rng = np.random.default_rng(3)
    layout = feature_layout(fit.grid)
    n = 600
    rates = rng.poisson(50.0, (n, fit.grid.channels)).astype(np.float32)
    truth = rng.uniform(0, 100, (n, len(fit.outputs))).astype(np.float32)
    p = prepare(fit, rates, np.full(n, 0.01), truth, layout)

    def linear_after(epochs: int, wd: float | None) -> tuple[torch.Tensor, object]:
        cfg = ResidualConfig(epochs=epochs, hidden=8, linear_wd=wd, refit_all=False)
        net, _ = train_prepared(p, layout, held_out=0.2, cfg=cfg, progress=False)
        assert not net.linear.weight.requires_grad  # frozen again once trained
        return net.linear.weight.detach().clone(), net

    solved, _ = linear_after(1, None)
    assert torch.equal(linear_after(2, None)[0], solved)  # training never moves it
    trained, net = linear_after(2, 0.0)
    assert not torch.equal(trained, solved)
    with torch.no_grad():
        net.keep.fill_(1.0)  # every element served: a residual of zeros would prove nothing
        direct = net(torch.from_numpy(rates), torch.from_numpy(p.areas),
                     torch.from_numpy(p.sigma)).numpy()
    assert np.abs(direct).max() > 0
    np.testing.assert_allclose(residual_of(net, p), direct, rtol=1e-5, atol=1e-4)
