"""Train and measure one run of the study: :func:`run_one` turns a :class:`RunConfig` into its
result row."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from experiments._config import RunConfig
from experiments._data import DATASETS, load_data, make_model
from experiments._datainit import data_init
from experiments._examples import Config, Metrics, evaluate, train
from experiments._methods import METHODS, QuantizerSpec
from experiments._probe import Probe

__all__ = ["run_one"]


def _library_init(cfg: RunConfig) -> str:
    """The layers' ``codebook_init``: ``"data"`` starts from the default and is applied by the
    study itself (:mod:`experiments._datainit`)."""
    return "symmetric" if cfg.codebook_init == "data" else cfg.codebook_init


def _demo_config(cfg: RunConfig) -> Config:
    dim = DATASETS[cfg.dataset].dim
    return Config(
        steps=cfg.steps,
        batch=cfg.batch,
        lr=cfg.lr,
        num_codes=cfg.num_codes,
        dim=dim,
        eval_every=cfg.eval_every,
        warmup_share=cfg.warmup_share,
        noise_std=cfg.noise_std,
        codebook_init=_library_init(cfg),
    )


def _metrics(prefix: str, m: Metrics | None) -> dict[str, float]:
    names = ("psnr", "ssim", "usage", "perplexity")
    if m is None:
        return {prefix + n: float("nan") for n in names}
    return {prefix + n: getattr(m, n) for n in names}


def run_one(cfg: RunConfig, threads: int = 1) -> dict[str, Any]:
    """Train the run ``cfg`` with ``threads`` torch threads; return its result row."""
    torch.set_num_threads(threads)
    data = load_data(cfg.dataset, cfg.quick)
    test = data.test_float()  # type: ignore[attr-defined]
    method = METHODS[cfg.method]
    builder = method.build
    if builder is None:
        raise ValueError(f"{cfg.method} is not implemented yet (experiments/_methods.py)")
    demo = _demo_config(cfg)
    spec = QuantizerSpec(
        num_codes=cfg.num_codes,
        dim=demo.dim,
        noise_std=cfg.noise_std,
        codebook_init=_library_init(cfg),
        skip_iters=demo.skip_iters,
        avg_iters=demo.avg_iters,
        sf_init=cfg.sf_init,
        steps=cfg.steps,
    )
    probes: list[Probe] = []

    def build() -> torch.nn.Module:
        quantizer = builder(spec)
        if cfg.codebook_init == "data":
            data_init(quantizer)
        model = make_model(cfg.dataset, quantizer)
        probes.append(Probe(model, cfg.diag_every, test, rewrites=not method.moving))
        return model

    start, cpu = time.perf_counter(), time.process_time()
    run = train(
        cfg.method,
        demo,
        data,
        cfg.seed,
        progress=False,
        build=build,
        on_eval=lambda step, model: probes[0].on_eval(step, model),
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    final = evaluate(run.model, test, ssim=True)
    vertex = None
    if method.space_filling:
        quantizer: Any = run.model.quantizer
        quantizer.vertices = True
        vertex = evaluate(run.model, test, ssim=True)
        quantizer.vertices = False
    probe = probes[0]
    return {
        "key": cfg.key,
        **dataclasses.asdict(cfg),
        "bits": cfg.bits,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        **_metrics("", final),
        **_metrics("vertex_", vertex),
        "curves": {"step": run.steps, "psnr": run.psnr_curve, "usage": run.usage_curve},
        "evals": probe.evals,
        "diag": probe.log,
        "threads": threads,
        "torch": torch.__version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
