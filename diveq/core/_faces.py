"""The faces of a backend's functions: signatures, docstrings and type stubs from one table.

Every public function of a backend is described by its :class:`diveq._ops.Op` and by the
backend's :class:`Idiom` (its array type and randomness keyword). From these two this module
renders the runtime signature and numpydoc docstring (:mod:`diveq.core._bind` attaches them)
and the typed stub ``_api.pyi`` that type checkers and IDEs read. The stubs are generated, never
edited: ``make stubs`` (``python -m diveq.core._faces``) rewrites them, and a test fails when
one is stale.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from diveq._ops import FUNCTIONS, PARAMS, REQUIRED, RNG, Op

__all__ = ["Idiom", "docstring", "signature", "stub"]

BACKENDS = ("diveq.backends.torch", "diveq.backends.jax")


@dataclass(frozen=True)
class Idiom:
    """What a backend's functions say differently: its types, randomness and examples.

    Attributes
    ----------
    module : str
        Import path of the backend (the functions' ``__module__``).
    array : str
        Array type, as written in annotations and docs (``"torch.Tensor"``).
    rng : str
        The randomness keyword as a parameter: ``"generator: torch.Generator | None"``.
    rng_doc : str
        Its description.
    note : str
        Paragraph after each summary line; ``{name}`` is the function's name.
    example : tuple of str
        ``(array constructor, randomness keyword argument)`` for the Examples sections.
    raises : str
        Extra ``ValueError`` condition of the stochastic functions (empty: none).
    """

    module: str
    array: str
    rng: str
    rng_doc: str
    note: str
    example: tuple[str, str]
    raises: str = ""

    @property
    def rng_name(self) -> str:
        """The randomness keyword (``"generator"``, ``"key"``)."""
        return self.rng.partition(": ")[0]

    @property
    def rng_annotation(self) -> str:
        """Its annotation (``"torch.Generator | None"``)."""
        return self.rng.partition(": ")[2]


def _fields(op: Op, idiom: Idiom) -> dict[str, str]:
    return {**op.fields(), "array": idiom.array, "rng": idiom.rng_name}


def _returns(op: Op) -> tuple[str, str, str]:
    """``(annotation, numpydoc type, description)`` of the result."""
    if op.returns:
        annotation, kind, text = op.returns
        return annotation, kind, text
    if not op.space_filling:
        return (
            "Quantized",
            "Quantized",
            "``values`` (shape ``z.shape``, the dtype of ``z``) and ``indices`` of the selected "
            "codewords (shape ``{index_shape}``).",
        )
    where = "the dither ``lam_i``" if op.train else "the projection ``t`` in ``[0, 1]``"
    return (
        "SFQuantized",
        "SFQuantized",
        "``values`` (shape ``z.shape``, the dtype of ``z``); ``indices``, the segment ``i`` of "
        f"each point (on ``[c_i, c_(i+1)]``), and ``weights``, its position there: {where}; "
        "both of shape ``{index_shape}``.",
    )


def signature(op: Op, idiom: Idiom) -> inspect.Signature:
    """The function's signature, with its annotations as strings (as in the stub)."""
    fields = _fields(op, idiom)
    params, names = [], op.parameters
    star = names.index("*") if "*" in names else len(names)
    for i, name in enumerate(names):
        if name == "*":
            continue
        kind = (
            inspect.Parameter.KEYWORD_ONLY if i > star else inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        if name == RNG:
            rng, annotation = idiom.rng_name, idiom.rng_annotation
            params.append(inspect.Parameter(rng, kind, default=None, annotation=annotation))
            continue
        spec = PARAMS[name]
        default = inspect.Parameter.empty if spec.default is REQUIRED else spec.default
        annotation = spec.annotation.format(**fields)
        params.append(inspect.Parameter(name, kind, default=default, annotation=annotation))
    return inspect.Signature(params, return_annotation=_returns(op)[0].format(**fields))


def _entry(head: str, text: str) -> list[str]:
    return [head, *textwrap.wrap(text, 92, initial_indent="    ", subsequent_indent="    ")]


def _either(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _raises(op: Op, idiom: Idiom) -> list[str]:
    names = op.parameters
    arrays = [f"``{n}``" for n in ("z", op.book_name) if n in names]
    arrays += ["a draw"] if op.stochastic else []
    types, values = [f"{_either(arrays)} is not real floating"] if arrays else [], []
    if "z" in names and op.book_name in names:
        values.append(f"``z`` and ``{op.book_name}`` do not fit together (rank, feature size)")
    if "indices" in names:
        types.append("``indices`` is not integer")
        values += ["``indices`` does not have the shape ``z.shape[:-1]``"] if "z" in names else []
    if "num_codes" in names:
        types.append("``num_codes`` is not an int")
        values.append("``num_codes < 1``")
    if op.space_filling:
        values.append("``K < 2``")
    if op.books == "product" and not op.params:
        values.append("``D % M != 0``")
    if "noise_std" in names:
        types.append("``noise_std`` is not a real number")
        values.append("``noise_std`` is negative or not finite")
    if "tau" in names:
        types.append("``tau`` is not a real number, or ``hard`` is not a bool")
        values.append("``tau`` is not finite and > 0")
    if op.stochastic:
        values.append("a draw has the wrong shape")
        values += [idiom.raises] if idiom.raises else []
    if "chunk_size" in names:
        values.append("``chunk_size`` is not a positive int")
    for kind, text in op.errors:
        (types if kind == "TypeError" else values).append(text)
    out = ["Raises", "------"]
    out += _entry("TypeError", f"If {', or '.join(types)}.") if types else []
    return out + (_entry("ValueError", f"If {', or '.join(values)}.") if values else [])


_EXAMPLE_BOOKS = {
    "single": "[[0.0, 0.0], [1.0, 0.0]]",
    "product": "[[[0.0], [1.0]], [[0.0], [1.0]]]",
    "residual": "[[[0.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.5]]]",
}


def _examples(op: Op, idiom: Idiom) -> list[str]:
    """Doctest lines: inputs where every selection is clear, then the op's example."""
    array, rng = idiom.example
    lines = [f"import {idiom.array.split('.')[0]}", f"import {idiom.module} as dq"]
    if "z" in op.parameters:
        books = f"{array}({_EXAMPLE_BOOKS[op.books]})"
        lines += [f"z = {array}([[0.25, 0.75]])", f"{op.book_name} = {books}"]
    call, want = op.example
    rng_arg = f", {rng}" if op.stochastic else ""
    return [*lines, call.format(array=array, rng=rng_arg), f">{want}"]


def docstring(op: Op, idiom: Idiom) -> str:
    """The numpydoc docstring of ``op`` in the backend ``idiom``."""
    fields = _fields(op, idiom)
    docs = {name: (kind, text) for name, kind, text in op.docs}
    note = idiom.note.format(name=op.name)
    if "z" in op.parameters and "indices" not in op.parameters:
        note += " float16 and bfloat16 latents are searched in float32"
        note += "." if op.name == "nearest" else "; the outputs keep the dtype of ``z``."
    lines = [op.summary, "", *textwrap.wrap(note, 96), ""]
    lines += ["Parameters", "----------"]
    for name in op.parameters:
        if name == RNG:
            kind = idiom.rng_annotation.removesuffix(" | None") + ", optional"
            lines += _entry(f"{idiom.rng_name} : {kind}", idiom.rng_doc)
        elif name != "*":
            kind, text = docs.get(name, (PARAMS[name].kind, PARAMS[name].text))
            lines += _entry(f"{name} : {kind.format(**fields)}", text.format(**fields))
    _, kind, text = _returns(op)
    lines += ["", "Returns", "-------", *_entry(kind.format(**fields), text.format(**fields))]
    lines += ["", *_raises(op, idiom), "", "See Also", "--------"]
    lines += [f"diveq.reference.{op.name} : The normative reference: formulas and gradients."]
    lines += ["", "Examples", "--------"]
    lines += [line[1:] if line[:1] == ">" else f">>> {line}" for line in _examples(op, idiom)]
    return "\n".join(lines) + "\n"


def _render(name: str, sig: inspect.Signature) -> str:
    """``def name(...) -> R: ...`` as ruff formats a stub (one line if it fits in 100)."""
    parts, star = [], False
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        default = "" if p.default is inspect.Parameter.empty else f" = {p.default!r}"
        parts.append(f"{p.name}: {p.annotation}{default}")
    ret = sig.return_annotation
    line = f"def {name}({', '.join(parts)}) -> {ret}: ..."
    if len(line) <= 100:
        return line
    return "\n".join([f"def {name}(", *(f"    {p}," for p in parts), f") -> {ret}: ..."])


def stub(idiom: Idiom) -> str:
    """The typed stub ``_api.pyi`` of the backend ``idiom``: one ``def`` per function."""
    head = [
        f'"""Typed signatures of {idiom.module}\'s functions (their docs are at runtime).',
        "",
        "Generated by ``make stubs`` (``python -m diveq.core._faces``) from ``diveq/_ops.py``.",
        '"""',
        "",
        f"import {idiom.array.split('.')[0]}",
        "",
        "from diveq._types import EMAState, Quantized, SFQuantized",
        "",
        "",
    ]
    defs = [_render(op.name, signature(op, idiom)) for op in FUNCTIONS]
    return "\n".join(head) + "\n".join(defs) + "\n"


def stub_path(module: str) -> Path:
    """Where the stub of the backend ``module`` lives."""
    return Path(__file__).resolve().parents[2].joinpath(*module.split("."), "_api.pyi")


def main() -> None:
    """Rewrite the stub of every backend (each backend's ``_functions.IDIOM``)."""
    for module in BACKENDS:
        idiom: Idiom = importlib.import_module(f"{module}._functions").IDIOM
        path = stub_path(module)
        path.write_text(stub(idiom))
        sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
