"""The evidence study's pipeline (``experiments/``): a ``--quick`` smoke of every part, the
resumable store, and the statistics behind its tables."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("skimage")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")
pytest.importorskip("scipy")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `experiments` is a folder of the repository, not installed
    sys.path.insert(0, str(ROOT))
TABLES = ("status", "main", "noise", "init", "sf_init", "diagnostics")
FIGURES = ("psnr_vs_budget", "usage_over_training", "noise_scale", "init_comparison", "diagnostics")


def _table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def torch_threads():
    """The runner sets torch's thread count for its runs: restore it for the other tests."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_quick_study_runs_resumes_and_analyses(tmp_path, capsys, torch_threads):
    from experiments import analyze, run
    from experiments._plan import plan

    results = tmp_path / "runs.csv"
    assert run.main(["--quick", "--threads", "1", "--results", str(results)]) == 0
    planned, _ = plan(quick=True)
    assert f"{len(planned)} runs trained" in capsys.readouterr().out
    assert run.main(["--quick", "--threads", "1", "--results", str(results)]) == 0
    again = capsys.readouterr().out
    assert f"{len(planned)} have rows" in again and "0 to train" in again, again

    out = tmp_path / "evidence"
    analyze.main(["--quick", "--results", str(results), "--out", str(out)])
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 0
    tables = {name: _table(out / f"{name}.csv") for name in TABLES}
    assert {r["state"] for r in tables["status"]} == {"complete"}
    for name in TABLES[1:]:
        assert tables[name], f"{name} table is empty"
    methods = {r["method"] for r in tables["main"]}
    expected = {
        "STE",
        "DiVeQ",
        "DiVeQ det.",
        "SF-DiVeQ (codewords)",
        "residual SF-DiVeQ (polyline)",
    }
    assert expected <= methods, methods
    for row in tables["main"]:
        assert math.isfinite(float(row["PSNR dB"].split()[0])), row
        assert 0 <= float(row["usage %"].split()[0]) <= 100, row


def test_store_cuts_a_torn_last_line_and_skips_it(tmp_path):
    from experiments._store import COLUMNS, append, read

    path = tmp_path / "runs.csv"
    row = dict.fromkeys(COLUMNS, "1") | {"key": "a", "curves": {"x": [1]}, "evals": {}, "diag": {}}
    append(path, row)
    with path.open("a") as f:
        f.write('"b",photos,torn')  # a crash mid-append
    assert [r["key"] for r in read(path)] == ["a"]
    append(path, row | {"key": "c"})
    rows = read(path)
    assert [r["key"] for r in rows] == ["a", "c"]
    assert rows[1]["curves"] == {"x": [1]}


def test_options_a_method_ignores_do_not_change_its_key():
    from experiments._config import run_config

    a = run_config("photos", "ste", 0, 100, 256, noise_std=1e-3, sf_init="kmeans")
    b = run_config("photos", "ste", 0, 100, 256, noise_std=0.1, warmup_share=0.3)
    assert a.key == b.key
    c = run_config("photos", "diveq", 0, 100, 256, noise_std=1e-3)
    d = run_config("photos", "diveq", 0, 100, 256, noise_std=0.0)
    assert c.key != d.key
    with pytest.raises(ValueError, match="num_codes"):
        run_config("photos", "product_diveq", 0, 100, 32)


def test_paired_interval_and_test_match_scipy():
    from scipy import stats

    from experiments._stats import paired, summary

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=6), rng.normal(size=6) + 0.3
    d = paired(dict(enumerate(a)), dict(enumerate(b)))
    ref = stats.ttest_rel(a, b)
    assert d.n == 6 and math.isclose(d.t, ref.statistic) and math.isclose(d.p, ref.pvalue)
    ci = stats.t.interval(0.95, 5, loc=np.mean(a - b), scale=stats.sem(a - b))
    assert math.isclose(d.mean - d.half, ci[0]) and math.isclose(d.mean + d.half, ci[1])
    assert summary([1.0]).n == 1 and math.isnan(summary([1.0]).half)
    assert paired({0: 1.0}, {0: 2.0, 1: 3.0}).n == 1  # one shared seed: no test
    same = paired({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})  # e.g. an init the warm-up overwrites
    assert same.p == 1.0 and same.cell(2) == "0 (identical in all 2 pairs)"


def test_kmeans_tour_orders_a_short_polyline():
    import torch

    from experiments._kmeans import kmeans, tour

    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0], [30.0, 0.0]])
    rows = centres.repeat_interleave(50, 0) + 0.01 * torch.randn(200, 2, generator=gen)
    found = kmeans(rows, 4, gen)
    path = tour(found[torch.randperm(4, generator=gen)])
    steps = (path[1:] - path[:-1]).norm(dim=1)
    assert torch.allclose(steps, torch.full((3,), 10.0), atol=0.1), path
    with pytest.raises(ValueError, match="at least k"):
        kmeans(rows[:3], 4, gen)


def test_gumbel_prior_term_is_the_kl_to_uniform_and_trains_the_latents():
    import math

    import torch

    from experiments._examples import make_quantizer

    q = make_quantizer("gumbel", 8, 2, gumbel_kl=0.5)
    with torch.no_grad():
        q.layer.codebook.zero_()  # every logit equal: the softmax is uniform, KL = 0
    z = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert abs(q(z)[2].item()) < 1e-6
    with torch.no_grad():
        q.layer.codebook.copy_(torch.eye(8, 2) * 3.0)
    aux = q(z)[2]
    p = torch.softmax(
        -(torch.cdist(z.detach().movedim(1, -1).reshape(-1, 2), q.codebook.detach()) ** 2), -1
    )
    want = 0.5 * float((p * p.log()).sum(-1).mean() + math.log(8))
    assert aux.item() == pytest.approx(want, rel=1e-5)
    aux.backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0
    assert make_quantizer("gumbel", 8, 2)(z)[2].item() == 0.0  # no prior term by default


@pytest.mark.parametrize("method", ["sf_diveq", "product_sf_diveq", "residual_sf_diveq", "diveq"])
def test_training_call_usage_through_an_sf_warm_up(method):
    """Inside an SF warm-up a composite returns codeword indices (up to K - 1), on the polyline
    segment indices (up to K - 2, both ends counted); one codebook returns -1 (0 % used)."""
    import torch

    from experiments._methods import METHODS, QuantizerSpec
    from experiments._probe import _train_usage

    spec = QuantizerSpec(num_codes=16, dim=8, noise_std=1e-3, codebook_init="symmetric",
                         skip_iters=3, avg_iters=1, sf_init="average", steps=10)  # fmt: skip
    q = METHODS[method].build(spec)
    q.train()
    z = torch.randn(4, 8, 4, 4, generator=torch.Generator().manual_seed(0))
    for call in range(1, 5):
        share = _train_usage(q, q(z)[1])
        assert 0.0 <= share <= 100.0
        if method == "sf_diveq" and call < 3:
            assert share == 0.0
