"""One call of a Gumbel-softmax layer, shared by the torch and JAX layers.

The layer has no training state besides its codebook (a parameter trained by gradient): a call
moves the features last, quantises the valid rows (finite and not masked) with the backend's
:func:`gumbel_softmax` in training or its hard :func:`quantize` in eval, and passes the other
rows through with index ``-1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from diveq._checks import check_draw
from diveq._layer_spec import LayerSpec
from diveq._types import LayerOutput
from diveq.core._common import Array
from diveq.core._layer_rows import finish, to_rows
from diveq.core._state import perplexity

__all__ = ["gumbel_layer_call", "gumbel_spec"]


def gumbel_spec(num_codes: int, dim: int, feature_axis: int, codebook_init: str) -> LayerSpec:
    """The options a Gumbel-softmax layer shares with the other layers, validated as theirs."""
    return LayerSpec(
        "single",
        1,
        num_codes,
        dim,
        replacement_iters=None,
        feature_axis=feature_axis,
        codebook_init=codebook_init,
    )


def gumbel_layer_call(
    spec: LayerSpec,
    xp: Any,
    function: Callable[[str], Callable[..., Any]],
    codebook: Array,
    z: Array,
    mask: Array | None,
    *,
    train: bool,
    tau: Any,
    hard: bool,
    gumbel: Callable[[Array], Array],
) -> LayerOutput:
    """One layer call; ``gumbel(rows)`` returns the draws ``(N, K)`` (given or sampled)."""
    rows, valid, lead = to_rows(spec, xp, z, mask)
    # Invalid rows are zeroed before the estimator: their NaN would reach the codebook gradient.
    safe = xp.where(valid[:, None], rows, xp.zeros_like(rows))
    if train:
        g = gumbel(rows)
        check_draw("gumbel", g, (rows.shape[0], spec.num_codes), rows)
        out = function("gumbel_softmax")(safe, codebook, tau=tau, hard=hard, gumbel=g)
    else:
        out = function("quantize")(safe, codebook)
    idx = out.indices[:, None]
    values, indices, _ = finish(spec, xp, rows, valid, lead, out.values, idx, idx)
    return LayerOutput(values, indices, perplexity(indices, spec.num_codes))
