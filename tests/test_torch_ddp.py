"""Data-parallel torch layers (SPEC section 7): two gloo workers on CPU under DDP.

Each worker trains a :class:`DiVeQ` model (replacement every 3 calls, DDP's default
``broadcast_buffers=True``), an :class:`SFDiVeQ` model (warm-up of 4 calls, the recommended
``broadcast_buffers=False``) and a space-filling :class:`ResidualDiVeQ` (replacement during its
warm-up, an explicit ``process_group``), each worker on its own data with its own generator,
and saves what it saw after every step. The parent checks that both workers hold bit-identical
codebooks and counters equal to the counts summed over both workers, that replacement happened
and that the SF warm-up used both workers' rows.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import diveq.core as core
from diveq.backends.torch import DiVeQ
from diveq.backends.torch._distributed import active_group

torch_dist = pytest.importorskip("torch.distributed")
pytestmark = pytest.mark.skipif(not torch_dist.is_available(), reason="no torch.distributed")

STEPS, K, D, WINDOW, SKIP, AVG = 10, 16, 4, 3, 4, 2

WORKER = textwrap.dedent(
    """
    import sys
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP
    from diveq.backends.torch import DiVeQ, EMAVQ, ResidualDiVeQ, SFDiVeQ

    rank, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    STEPS, K, D, WINDOW, SKIP, AVG = {consts}
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{{port}}", rank=rank,
                            world_size=2)

    class Net(nn.Module):
        def __init__(self, vq):
            super().__init__()
            self.lin = nn.Linear(D, D)
            self.vq = vq

        def forward(self, x, generator=None):
            h = self.lin(x)
            out = self.vq(h, generator=generator)
            return out.values, out.indices, h.detach()

    torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
    models = {{
        "diveq": DDP(Net(DiVeQ(K, D, replacement_iters=WINDOW))),
        "sf": DDP(Net(SFDiVeQ(K, D, skip_iters=SKIP, avg_iters=AVG)),
                  broadcast_buffers=False, find_unused_parameters=True),
        # composite SF: replacement during the warm-up, an explicit process group
        "residual_sf": DDP(Net(ResidualDiVeQ(2, K, D, space_filling=True, replacement_iters=2,
                                             skip_iters=6, avg_iters=2,
                                             process_group=dist.new_group([0, 1]))),
                           broadcast_buffers=False, find_unused_parameters=True),
        "ema": DDP(Net(EMAVQ(K, D, decay=0.9))),  # statistics all-reduced before the update
    }}
    opts = {{n: torch.optim.SGD(m.parameters(), lr=0.1) for n, m in models.items()}}
    gen = torch.Generator().manual_seed(1000 + rank)  # different draws on each worker
    data = torch.Generator().manual_seed(7 + rank)
    log = {{n: [] for n in models}}
    for step in range(1, STEPS + 1):
        rows = 6 + 3 * rank  # different batch sizes too
        x = torch.randn(rows, D, generator=data) + (2.0 if rank == 0 else -2.0)
        for name, model in models.items():
            vq = model.module.vq
            book = vq._param if hasattr(vq, "_param") else lambda: vq.codebook
            none = torch.zeros(0)  # EMAVQ has no usage counters
            before = book().detach().clone()
            values, idx, h = model(x, generator=gen)
            after = book().detach().clone()
            (values ** 2).mean().backward()
            opts[name].step()
            opts[name].zero_grad()
            log[name].append(dict(
                before=before, after=after, idx=idx, h=h, final=book().detach().clone(),
                hits=getattr(vq, "hits", none).clone(),
                used=getattr(vq, "calls_used", none).clone(),
            ))
    torch.save(log, out)
    dist.barrier()
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _counts(idx: torch.Tensor) -> torch.Tensor:
    idx = idx.reshape(-1)
    return torch.bincount(idx[idx >= 0], minlength=K)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    script = tmp / "worker.py"
    script.write_text(WORKER.format(consts=(STEPS, K, D, WINDOW, SKIP, AVG)))
    port = str(_free_port())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("XLA_FLAGS", None)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), port, str(tmp / f"rank{r}.pt")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    outputs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=50)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("DDP workers timed out (hang in a collective?)")
        outputs.append(out.decode(errors="replace"))
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r} failed:\n{outputs[r][-4000:]}"
    return [torch.load(tmp / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("name", ["diveq", "sf", "residual_sf", "ema"])
def test_ranks_stay_bit_identical(logs, name):
    for step, (a, b) in enumerate(zip(logs[0][name], logs[1][name], strict=True), start=1):
        for key in ("before", "after", "final", "hits", "used"):
            assert torch.equal(a[key], b[key]), (name, step, key)


@pytest.mark.parametrize(
    ("name", "resets"), [("diveq", range(WINDOW, STEPS + 1, WINDOW)), ("sf", [SKIP - 1])]
)
def test_counters_are_summed_over_ranks(logs, name, resets):
    hits = torch.zeros(K, dtype=torch.int64)
    used = torch.zeros(K, dtype=torch.int64)
    only_one_rank = False
    for step in range(1, STEPS + 1):
        per_rank = [_counts(logs[r][name][step - 1]["idx"]) for r in range(2)]
        total = per_rank[0] + per_rank[1]
        only_one_rank |= bool(((per_rank[0] > 0) ^ (per_rank[1] > 0)).any())
        hits, used = hits + total, used + (total > 0).long()
        if step in resets:
            hits, used = torch.zeros_like(hits), torch.zeros_like(used)
        for r in range(2):
            assert torch.equal(logs[r][name][step - 1]["hits"], hits), (name, step, r)
            assert torch.equal(logs[r][name][step - 1]["used"], used), (name, step, r)
    assert only_one_rank  # some code was used on one worker only: presence is global


def test_replacement_happened_and_only_at_windows(logs):
    replaced_any = False
    for step, entry in enumerate(logs[0]["diveq"], start=1):
        changed = (entry["before"] != entry["after"]).any(dim=-1)
        if step % WINDOW:
            assert not changed.any(), step
        replaced_any |= bool(changed.any())
    assert replaced_any


def test_sf_warmup_uses_all_ranks_rows(logs):
    init = SKIP - 1
    rows = [logs[r]["sf"][c - 1]["h"] for c in range(init - AVG + 1, init + 1) for r in range(2)]
    rows = torch.cat(rows)  # call, then rank, then row
    expected = core.warmup_codebook(rows, K, valid=torch.ones(rows.shape[0], dtype=torch.bool))
    for r in range(2):
        got = logs[r]["sf"][init - 1]["after"]
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
        assert not torch.equal(logs[r]["sf"][init - 1]["before"], got)


def test_ema_update_uses_both_ranks_rows(logs):
    """Every worker's codebook is the reference EMA update of both workers' rows."""
    import diveq.reference as ref

    state = ref.ema_init(logs[0]["ema"][0]["before"].double().numpy())
    for step in range(STEPS):
        h = torch.cat([logs[r]["ema"][step]["h"] for r in range(2)]).double().numpy()
        idx = torch.cat([logs[r]["ema"][step]["idx"] for r in range(2)]).numpy()
        state = ref.ema_update(state, *ref.ema_statistics(h, idx, K), decay=0.9)
        for r in range(2):
            got = logs[r]["ema"][step]["after"].double().numpy()
            np.testing.assert_allclose(got, state.codebook, rtol=1e-5, atol=1e-6)
        state = ref.EMAState(logs[0]["ema"][step]["after"].double().numpy(), *state[1:])


def test_single_process_runs_no_collectives():
    assert not torch_dist.is_initialized()
    assert active_group(None) is None
    vq = DiVeQ(K, D, replacement_iters=None)
    out = vq(torch.randn(20, D))
    assert torch.equal(vq.hits, _counts(out.indices))
    assert torch.equal(vq.calls_used, (_counts(out.indices) > 0).long())


def test_residual_sf_replaced_and_initialised(logs):
    log = logs[0]["residual_sf"]
    changed = [bool((e["before"] != e["after"]).any()) for e in log]
    assert changed[1] or changed[3]  # replacement at calls 2 and 4 (warm-up)
    assert changed[4]  # initialised from the warm-up rows at call 5
    used = [e["idx"] for e in log]
    assert all((i >= 0).all() for i in used)  # composite DiVeQ during warm-up, then SF
