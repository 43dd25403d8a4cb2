"""The contract, run against every available implementation (core on NumPy and
array-api-strict, and the torch / JAX backends where installed)."""

from __future__ import annotations

import pytest

from diveq.testing import (
    OPS,
    check_commitment,
    check_edge_values,
    check_empty,
    check_errors,
    check_forward,
    check_gradient,
    check_sampling,
    check_usage,
)

DTYPES = ["float64", "float32"]
TRAIN_OPS = [op for op in OPS if op.train]
STOCHASTIC_OPS = [op for op in OPS if op.stochastic]


def _ids(op):
    return op.name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS, ids=_ids)
def test_forward_matches_reference(backend, op, dtype):
    check_forward(backend, op, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", TRAIN_OPS, ids=_ids)
def test_gradient_matches_reference(diff_backend, op, dtype):
    check_gradient(diff_backend, op, dtype)


@pytest.mark.parametrize("op", OPS, ids=_ids)
def test_errors(backend, op):
    check_errors(backend, op)


@pytest.mark.parametrize("op", OPS, ids=_ids)
def test_edge_values(backend, op):
    check_edge_values(backend, op)


@pytest.mark.parametrize("op", OPS, ids=_ids)
def test_empty_input(backend, op):
    check_empty(backend, op)


@pytest.mark.parametrize("op", STOCHASTIC_OPS, ids=_ids)
def test_sampling_is_reproducible(sampling_backend, op):
    check_sampling(sampling_backend, op)


def test_usage_and_perplexity(backend):
    check_usage(backend)


@pytest.mark.parametrize("dtype", DTYPES)
def test_commitment_loss_matches_reference(backend, dtype):
    check_commitment(backend, dtype)
