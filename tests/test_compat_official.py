"""``diveq.compat.official``: the paper-style script trains after changing one import line, and
official ``diveq`` 0.1.3 checkpoints load into it and into the native layers."""

from __future__ import annotations

import difflib
import inspect
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny models: threads only contend

from _official import load_official  # noqa: E402

import diveq.backends.torch as dq  # noqa: E402
import diveq.compat.official as co  # noqa: E402

SCRIPT = Path(__file__).with_name("_paper_script.py")
OFFICIAL_IMPORT = "from diveq import ("
COMPAT_IMPORT = "from diveq.compat.official import ("
CLASSES = [name for name in co.__all__ if name != "convert_state_dict"]
SF = {"skip_iters": 6, "avg_iters": 3}
NATIVE = {  # the script's layers (K = 16, D = 8, M = 2) as native layers
    "diveq": lambda: dq.DiVeQ(16, 8),
    "sfdiveq": lambda: dq.SFDiVeQ(16, 8, **SF),
    "diveq_detach": lambda: dq.DiVeQ(16, 8, noise_std=0.0),
    "sfdiveq_detach": lambda: dq.SFDiVeQ(16, 8, noise_std=0.0, **SF),
    "residual_diveq": lambda: dq.ResidualDiVeQ(2, 16, 8),
    "residual_sfdiveq": lambda: dq.ResidualDiVeQ(
        2, 16, 8, space_filling=True, replacement_iters=3, **SF
    ),
    "product_diveq": lambda: dq.ProductDiVeQ(2, 16, 8),
    "product_sfdiveq": lambda: dq.ProductDiVeQ(
        2, 16, 8, space_filling=True, replacement_iters=3, **SF
    ),
}


def _script(import_line: str) -> dict:
    source = SCRIPT.read_text().replace(OFFICIAL_IMPORT, import_line, 1)
    namespace: dict = {"__name__": "paper_script"}
    exec(compile(source, str(SCRIPT), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def scripts() -> tuple[dict, dict]:
    load_official()
    return _script("from diveq_official import ("), _script(COMPAT_IMPORT)


def _data() -> torch.Tensor:
    return torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _latents(model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        z = model._pre_vq_conv(model._encoder(x))
    return z.permute(0, 2, 3, 1).reshape(-1, model.embedding_dim)


def test_only_the_import_line_changes():
    before = SCRIPT.read_text().splitlines()
    after = SCRIPT.read_text().replace(OFFICIAL_IMPORT, COMPAT_IMPORT, 1).splitlines()
    changed = [d for d in difflib.ndiff(before, after) if d[:1] in "+-"]
    assert changed == [f"- {OFFICIAL_IMPORT}", f"+ {COMPAT_IMPORT}"]


@pytest.mark.parametrize("method", list(NATIVE))
def test_paper_script_runs_and_loads_the_official_checkpoint(method, scripts, tmp_path):
    official, compat = scripts
    data = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the official classes warn about the short warm-up
        off_model, off_log, off_recon = official["main"](method, data, tmp_path / "off.pt")
    model, log, recon = compat["main"](method, data, tmp_path / "compat.pt")
    assert len(log) == len(off_log) and all("nan" not in line for line in log)
    assert recon.shape == off_recon.shape and torch.isfinite(recon).all()

    # the official checkpoint loads into the compat model (strict) ...
    state = torch.load(tmp_path / "off.pt", weights_only=True)
    loaded = compat["Model"](32, 16, 8, 2, method)
    loaded.load_state_dict(state)
    assert loaded.vq.train_calls == off_model.vq.iter_counter.item() == 12
    z = _latents(off_model, data)
    mine, theirs = loaded.vq.inference(z), off_model.vq.inference(z)
    assert type(mine[1]) is type(theirs[1]) and type(mine[2]) is type(theirs[2])
    first = (lambda i: i[0]) if isinstance(mine[1], list) else (lambda i: i)
    assert torch.equal(first(mine[1]), first(theirs[1]))  # SF: the nearest vertex, as there
    if "sf" in method:  # the exact polyline projection is never farther
        err, off_err = ((v - z).norm(dim=1) for v in (mine[0], theirs[0]))
        assert (err <= off_err + 1e-5).all() or method == "residual_sfdiveq"
    else:
        assert torch.allclose(mine[0], theirs[0], atol=1e-6, rtol=0)
        if isinstance(mine[1], list):
            assert all(torch.equal(a, b) for a, b in zip(mine[1], theirs[1], strict=True))
    # ... and into a native layer through the converter; both keep training
    native = compat["Model"](32, 16, 8, 2, method)
    native.vq = NATIVE[method]()
    native.load_state_dict(co.convert_state_dict(state, native))
    assert native.vq.train_calls == 12
    assert torch.equal(native.vq.eval()(z).values, mine[0])
    assert native.vq.warmed_up == loaded.vq.warmed_up
    assert torch.isfinite(loaded.train()(data[:4])[0]).all()
    assert torch.isfinite(native.vq.train()(z).values).all()
    assert loaded.vq.train_calls == native.vq.train_calls == 13

    # the compat model's own checkpoint is a native one: it loads into the native model as is
    fresh = compat["Model"](32, 16, 8, 2, method)
    fresh.vq = NATIVE[method]()
    fresh.load_state_dict(torch.load(tmp_path / "compat.pt", weights_only=True))
    assert torch.equal(fresh.vq._param(), model.vq._param())


@pytest.mark.parametrize("name", CLASSES)
def test_constructors_take_the_official_arguments(name):
    theirs = inspect.signature(getattr(load_official(), name).__init__).parameters
    mine = inspect.signature(getattr(co, name).__init__).parameters
    assert list(mine) == list(theirs)
    assert [p.default for p in mine.values()] == [p.default for p in theirs.values()]


def test_compat_classes_are_the_native_layers():
    pairs = [
        (co.DIVEQ(8, 2), dq.DiVeQ),
        (co.DIVEQDetach(8, 2), dq.DiVeQ),
        (co.SFDIVEQ(8, 2), dq.SFDiVeQ),
        (co.SFDIVEQDetach(8, 2), dq.SFDiVeQ),
        (co.ProductDIVEQ(8, 4, 2), dq.ProductDiVeQ),
        (co.ProductSFDIVEQ(8, 4, 2), dq.ProductDiVeQ),
        (co.ResidualDIVEQ(8, 4, 2), dq.ResidualDiVeQ),
        (co.ResidualSFDIVEQ(8, 4, 2), dq.ResidualDiVeQ),
    ]
    for layer, native in pairs:
        assert isinstance(layer, native)
    assert co.DIVEQDetach(8, 2).noise_std == 0 and co.SFDIVEQDetach(8, 2).noise_std == 0
    assert co.DIVEQ(8, 2, codebook_reset=False).replacement_iters is None
    layer = co.ProductDIVEQ(8, 4, 2)  # official order: K, D, M
    assert layer.codebook is layer.codebooks and layer.codebooks.shape == (2, 8, 2)
    assert (layer.num_embeddings, layer.embedding_dim, layer.noise_var) == (8, 4, 1e-3)


def test_codebook_init_is_the_official_one():
    torch.manual_seed(0)
    book = co.DIVEQ(64, 32).codebook.detach()
    assert 0 <= float(book.min()) and float(book.max()) < 1 / 64
    normal = co.DIVEQ(64, 32, uniform_init=False).codebook.detach()
    assert float(normal.min()) < 0 and abs(float(normal.std()) * 64 - 1) < 0.1


def test_results_and_index_meanings():
    torch.manual_seed(0)
    sf = co.SFDIVEQ(8, 2, skip_iters=0)
    z = torch.randn(200, 2)
    _, indices, perplexity = sf(z)
    assert isinstance(perplexity, float) and int(indices.max()) <= 6  # training: segments
    calls = sf.train_calls
    z = torch.cat([z, sf.codebook.detach()[-1:]])  # the last vertex is its own nearest
    _, vertices, _ = sf.inference(z)
    assert torch.equal(vertices, dq.nearest(z, sf.codebook.detach()))  # inference: vertices
    assert int(vertices[-1]) == 7 and sf.train_calls == calls  # no state change
    sf.eval()
    assert all(torch.equal(a, b) for a, b in zip(sf(z)[:2], sf.inference(z)[:2], strict=True))
    assert sf.train_calls == calls
    warm = co.SFDIVEQ(8, 2, skip_iters=5, avg_iters=2)
    _, idx, perplexity = warm(z)
    assert (idx == -1).all() and perplexity == 1.0  # official: zeros and 0.0


def test_official_checkpoint_resumes_the_warmup_in_step():
    """Saved before the collecting window, the warm-up continues as the official one does."""
    off = load_official().SFDIVEQ(8, 2, skip_iters=6, avg_iters=3, allow_warning=False)
    torch.manual_seed(0)
    zs = [torch.randn(16, 2) for _ in range(5)]
    for z in zs[:2]:
        off(z)
    layer = co.SFDIVEQ(8, 2, skip_iters=6, avg_iters=3)
    layer.load_state_dict(off.state_dict())
    for z in zs[2:]:
        off(z)
        layer(z)
    assert layer.warmed_up and torch.allclose(layer.codebook, off.codebook, atol=1e-6)


def test_official_checkpoints_that_cannot_load_say_why():
    official = load_official()
    sf = official.SFDIVEQ(8, 2, skip_iters=6, avg_iters=3, allow_warning=False)
    for _ in range(4):
        sf(torch.randn(16, 2))
    with pytest.raises(ValueError, match="collecting window"):
        co.SFDIVEQ(8, 2, skip_iters=6, avg_iters=3).load_state_dict(sf.state_dict())
    with pytest.raises(ValueError, match=r"SFDIVEQ layer .* into a layer DiVeQ"):
        co.DIVEQ(8, 2).load_state_dict(sf.state_dict())
    plain = official.DIVEQ(8, 2, allow_warning=False).state_dict()
    with pytest.raises(ValueError, match=r"DIVEQ layer .* into a layer SFDiVeQ"):
        co.convert_state_dict(plain, dq.SFDiVeQ(8, 2))
    with pytest.raises(ValueError, match=r"shape \(8, 2\); the layer DiVeQ has \(8, 3\)"):
        co.DIVEQ(8, 3).load_state_dict(plain)
    # a native layer never loads official entries silently, not even with strict=False
    with pytest.raises(ValueError, match="convert_state_dict"):
        dq.DiVeQ(8, 2).load_state_dict(plain, strict=False)
    with pytest.raises(ValueError, match="not a diveq layer"):
        co.convert_state_dict({"vq." + k: v for k, v in plain.items()}, torch.nn.Linear(2, 2))
