"""Conformance report: run ``diveq.testing.check_backend`` on every installed implementation.

This is ``make demo`` until the compression demo lands. It prints, per implementation, how
many contract checks ran (forward values, indices, weights, gradients, errors, empty input,
sampling) against the NumPy reference with identical explicit draws, and how long they took.
"""

from __future__ import annotations

import argparse
import time

from diveq.testing import available_adapters, check_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10, help="hypothesis examples per check")
    args = parser.parse_args()
    try:
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 comparisons need x64
    except ImportError:
        pass
    print(f"{'implementation':<16} {'checks':>7} {'gradients':>9} {'seconds':>8}  status")
    for adapter in available_adapters():
        start = time.perf_counter()
        try:
            report = check_backend(adapter.module, adapter=adapter, max_examples=args.examples)
        except AssertionError as err:
            print(f"{adapter.name:<16} {'-':>7} {'-':>9} {time.perf_counter() - start:8.1f}  FAIL")
            print(f"    {str(err).splitlines()[0]}")
            continue
        grads = sum(1 for row in report.rows if row[0] == "gradient")
        print(f"{adapter.name:<16} {len(report.rows):>7} {grads:>9} {report.seconds:8.1f}  ok")


if __name__ == "__main__":
    main()
