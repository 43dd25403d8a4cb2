"""The typed faces of the backend functions: generated stubs, runtime signatures, docstrings and
what a type checker makes of a user's call."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest

from diveq._ops import FUNCTIONS, RNG
from diveq.core._faces import stub, stub_path

BACKENDS = ["torch", "jax"]


def _backend(name: str):
    pytest.importorskip(name)
    import importlib

    return importlib.import_module(f"diveq.backends.{name}._functions")


@pytest.mark.parametrize("name", BACKENDS)
def test_stub_is_fresh(name):
    idiom = _backend(name).IDIOM
    fresh = stub_path(idiom.module).read_text() == stub(idiom)
    assert fresh, "the table changed: regenerate the stubs with `make stubs`"


def _stub_defs(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("name", BACKENDS)
def test_runtime_signatures_match_the_stub(name):
    """What ``inspect.signature`` reports at runtime is what the type checker reads."""
    module = _backend(name)
    defs = _stub_defs(stub_path(module.IDIOM.module))
    assert sorted(defs) == sorted(module.FUNCTIONS)
    for fn_name, fn in module.FUNCTIONS.items():
        node, sig = defs[fn_name], inspect.signature(fn)
        args = node.args
        defaults = dict(zip([a.arg for a in args.args][::-1], args.defaults[::-1], strict=False))
        defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)})
        want = [(a.arg, "POSITIONAL_OR_KEYWORD") for a in args.args]
        want += [(a.arg, "KEYWORD_ONLY") for a in args.kwonlyargs]
        assert [(p.name, p.kind.name) for p in sig.parameters.values()] == want, fn_name
        for p in sig.parameters.values():
            stub_arg = next(a for a in args.args + args.kwonlyargs if a.arg == p.name)
            assert p.annotation == ast.unparse(stub_arg.annotation), (fn_name, p.name)
            node_default = defaults.get(p.name)
            if node_default is None:
                assert p.default is inspect.Parameter.empty, (fn_name, p.name)
            else:
                assert p.default == ast.literal_eval(node_default), (fn_name, p.name)
        assert sig.return_annotation == ast.unparse(node.returns), fn_name


@pytest.mark.parametrize("name", BACKENDS)
def test_docstrings_document_their_own_arguments(name):
    module = _backend(name)
    rng = module.IDIOM.rng_name
    for op in FUNCTIONS:
        doc = module.FUNCTIONS[op.name].__doc__
        params = [rng if p == RNG else p for p in op.parameters if p != "*"]
        section = doc.split("Parameters\n----------\n")[1].split("\n\nReturns")[0]
        documented = [line.split(" : ")[0] for line in section.splitlines() if " : " in line]
        assert documented == params, op.name
        for heading in ("Returns", "Raises", "See Also", "Examples"):
            assert f"\n{heading}\n" in doc, (op.name, heading)
        assert f"diveq.reference.{op.name} :" in doc, op.name


@pytest.mark.parametrize("name", BACKENDS)
def test_examples_fit_the_api_page_column(name):
    """At 1280 px the code column of a function's page is 728 px wide: 82 characters (an
    87-character line measured 757 px in docs/check_site.py); a longer line hides its end."""
    module = _backend(name)
    for op in FUNCTIONS:
        examples = module.FUNCTIONS[op.name].__doc__.split("\nExamples\n--------\n")[1]
        too_long = [line for line in examples.splitlines() if len(line) > 82]
        assert not too_long, (op.name, too_long)


# A user's file: every call below a `# wrong` line must be rejected, the rest accepted.
USER_FILE = """
import jax
import jax.numpy as jnp
import numpy as np
import torch

import diveq.backends.jax as jq
import diveq.backends.torch as tq

z, c = torch.zeros(3, 2), torch.zeros(4, 2)
out: tq.Quantized = tq.diveq(z, c, noise_std=3, generator=torch.Generator())
sf: tq.SFQuantized = tq.sf_diveq(z, c, dither=torch.rand(3), noise=None)
idx: torch.Tensor = tq.nearest(z, c, chunk_size=2)
loss: torch.Tensor = tq.commitment_loss(z, c, idx, beta=0.5)
tq.diveq(z, c, noise_sdt=3)  # wrong: misspelled keyword
tq.diveq(z, np.zeros((4, 2)))  # wrong: not a tensor
tq.diveq(z, c, 1e-3)  # wrong: options are keyword-only
tq.nsvq(z, c, key=jax.random.key(0))  # wrong: torch takes generator=
tq.quantize(z, c).weights  # wrong: Quantized has no weights

x, b = jnp.zeros((3, 2)), jnp.zeros((4, 2))
out2: jq.Quantized = jq.diveq(x, b, noise_std=3, key=jax.random.key(0))
counts: jax.Array = jq.code_usage(jq.nearest(x, b), 4)
jq.diveq(x, b, noise_sdt=3)  # wrong: misspelled keyword
jq.diveq(x, b, key=0)  # wrong: key is an array
jq.sf_diveq(x, b, generator=None)  # wrong: JAX takes key=
jq.perplexity(counts, "4")  # wrong: num_codes is an int
"""


def test_type_checker_rejects_wrong_calls(tmp_path):
    """mypy reads the stubs: misspelled keywords and wrong types fail for both backends.

    Runs with the project's mypy configuration and cache (``make lint`` warms it), so it costs a
    few seconds once torch's and JAX's types are cached.
    """
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    api = pytest.importorskip("mypy.api")
    user = tmp_path / "user.py"
    user.write_text(textwrap.dedent(USER_FILE))
    root = Path(__file__).resolve().parent.parent
    stdout, stderr, _ = api.run(
        [
            "--config-file",
            str(root / "pyproject.toml"),
            "--cache-dir",
            str(root / ".mypy_cache"),
            "--no-error-summary",
            str(user),
        ]
    )
    lines = USER_FILE.splitlines()
    wrong = {i + 1 for i, line in enumerate(lines) if "# wrong" in line}
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    # (mypy replays cached errors of an unchanged file under the path it had then)
    flagged = {int(line.split(":")[1]) for line in errors if line.split(":")[0].endswith("user.py")}
    assert len(flagged) == len(errors), stdout
    assert flagged == wrong, stdout + stderr
    assert "noise_sdt" in stdout
