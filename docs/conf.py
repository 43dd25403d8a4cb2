"""Sphinx configuration for the diveq documentation.

Build: ``make docs`` (``sphinx-build -W --keep-going -b html docs docs/_build/html``); check it in
a browser: ``make docs-check`` (``docs/check_site.py``).

The build and the site are offline: MathJax is served from the site itself
(``sphinx-mathjax-offline``), and intersphinx inventories are fetched only when
``DIVEQ_DOCS_INTERSPHINX=1``. Generated at build time (git-ignored): the autosummary stubs in
``docs/api/generated/`` and the gallery in ``docs/gallery/``, which sphinx-gallery runs from
``examples/`` and re-runs only for the scripts that changed since (its cache).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import re
import sys
from pathlib import Path

from docutils import nodes
from sphinx.util import logging

# The gallery runs torch examples in this process: sleep instead of spin in OpenMP barriers (on a
# busy machine spinning threads run ~10x slower). Set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document the working tree, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

import diveq  # noqa: E402

project = "diveq"
author = "the diveq authors"
copyright = "the diveq authors"
release = diveq.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/: formulas render offline
    "sphinx_copybutton",
    "sphinx_gallery.gen_gallery",
    "numpydoc",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "code"  # `x` renders as code, never as a (possibly unresolved) cross-reference
nitpicky = False

# -- autodoc / autosummary ---------------------------------------------------------------------
autosummary_generate = True  # stubs go to the :toctree: of each directive (api/generated/)
autosummary_generate_overwrite = True
autodoc_typehints = "none"  # numpydoc "Parameters" carry the types; signatures stay readable
autodoc_preserve_defaults = True  # `dtype=jnp.float32` as written, not `<class '...float32'>`
autodoc_member_order = "bysource"
add_module_names = False
python_maximum_signature_line_length = 72  # longer signatures: one parameter per line

# -- numpydoc ----------------------------------------------------------------------------------
# Class members are listed by the autosummary class template (docs/_templates/), not by
# numpydoc, which would otherwise add toctree entries to pages that are never generated.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- intersphinx (off unless asked for: the build machine is offline) ---------------------------
_INVENTORIES = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
    "jax": ("https://docs.jax.dev/en/latest", None),
    "hypothesis": ("https://hypothesis.readthedocs.io/en/latest", None),
}
intersphinx_mapping = _INVENTORIES if os.environ.get("DIVEQ_DOCS_INTERSPHINX") == "1" else {}

# -- HTML --------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"diveq {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 8,  # every top-level page in the bar, no "More"
    "navbar_align": "left",
    "navbar_persistent": [],  # the search button sits in navbar_end, not as a wide field
    "navbar_end": ["search-button", "theme-switcher"],
    # gallery pages: no outline column, so 100-column example code fits at 1280 px
    "secondary_sidebar_items": {
        "**": ["page-toc"],
        "gallery/index": [],
        **{f"gallery/{p.stem}": [] for p in (ROOT / "examples").glob("[!_]*.py")},
    },
    "footer_start": ["copyright"],
    "footer_end": [],
}
# Top-level pages without sub-pages get no "Section Navigation" sidebar (it would be empty).
html_sidebars = {
    page: [] for page in ("index", "performance", "evidence", "reliability", "migration")
}
html_static_path = ["_static"]
html_css_files = ["diveq.css"]
html_show_sourcelink = False
copybutton_exclude = ".linenos, .gp, .go"  # copy the code, not the prompts or the output

# -- gallery (sphinx-gallery; hooks in _ext/diveq_gallery.py) -----------------------------------
sphinx_gallery_conf = {
    "examples_dirs": [str(ROOT / "examples")],
    "gallery_dirs": ["gallery"],
    "filename_pattern": r"[\\/](compress|toy2d_jax)\.py$",  # executed; the others are shown
    "ignore_pattern": r"^_|^conformance_report\.py$",  # file names: the helper modules
    "within_subsection_order": "FileNameSortKey",
    "reset_argv": "diveq_gallery.reset_argv",
    "image_scrapers": ("matplotlib", "diveq_gallery.scrape_pngs"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
    "write_computation_times": False,
}

# -- public-API coverage -----------------------------------------------------------------------
# Every name in ``__all__`` of each public namespace must be documented under that namespace.
# A missing one is a warning, so the ``-W`` build fails and names the page to extend.
PUBLIC_NAMESPACES = {
    "diveq": "api/diveq",
    "diveq.reference": "api/reference",
    "diveq.core": "api/core",
    "diveq.backends.torch": "api/torch",
    "diveq.backends.jax": "api/jax",
    "diveq.backends.flax.nnx": "api/flax_nnx",
    "diveq.backends.flax.linen": "api/flax_linen",
    "diveq.backends.equinox": "api/equinox",
    "diveq.testing": "api/testing",
    "diveq.compat.official": "api/compat",
}

_logger = logging.getLogger("diveq.docs")

# -- "See Also": each function and layer page links its twins -------------------------------------
# The same name in the other implementations, the reference's VJP, the layer that trains with an
# estimator and back, and the same layer in the other frameworks: added to the "See Also"
# section of the docstring on its page (numpydoc renders it), after what the docstring lists.
_IMPLEMENTATIONS = {
    "diveq.reference": "The NumPy reference: formulas and gradients.",
    "diveq.core": "The array-API core, with explicit draws.",
    "diveq.backends.torch": "The PyTorch version.",
    "diveq.backends.jax": "The JAX version.",
}
_LAYERS = {
    "diveq.reference": "The NumPy reference layer: the normative state machine.",
    "diveq.backends.torch": "The ``torch.nn.Module`` layer.",
    "diveq.backends.jax": "The JAX layer: pure ``init`` / ``apply`` over a state pytree.",
    "diveq.backends.flax.nnx": "The Flax NNX module.",
    "diveq.backends.flax.linen": "The Flax Linen module.",
    "diveq.backends.equinox": "The Equinox module.",
}
_LAYER_OF = {  # estimator (or update) -> the layer class that trains with it
    "diveq": "DiVeQ",
    "sf_diveq": "SFDiVeQ",
    "product_diveq": "ProductDiVeQ",
    "product_sf_diveq": "ProductDiVeQ",
    "residual_diveq": "ResidualDiVeQ",
    "residual_sf_diveq": "ResidualDiVeQ",
    "ema_update": "EMAVQ",
    "gumbel_softmax": "GumbelVQ",
}


def _public(module_name: str) -> set[str]:
    try:
        return set(importlib.import_module(module_name).__all__)
    except Exception:  # reported by _check_public_api
        return set()


@functools.cache
def _related_links() -> dict[str, list[tuple[str, str]]]:
    """Full name -> ``(target, description)`` of the pages it should point to."""
    public = {name: _public(name) for name in {**_IMPLEMENTATIONS, **_LAYERS}}
    links: dict[str, list[tuple[str, str]]] = {}
    layers = set(_LAYER_OF.values())
    for module_name in _IMPLEMENTATIONS:
        for name in public[module_name] - layers:
            own = links.setdefault(f"{module_name}.{name}", [])
            for other, text in _IMPLEMENTATIONS.items():
                if other != module_name and name in public[other]:
                    own.append((f"{other}.{name}", text))
            if f"{name}_vjp" in public["diveq.reference"]:
                own.append((f"diveq.reference.{name}_vjp", "Its gradient (the reference VJP)."))
            layer = _LAYER_OF.get(name)
            for backend in ("diveq.reference", "diveq.backends.torch", "diveq.backends.jax"):
                if layer in public[backend]:
                    own.append((f"{backend}.{layer}", f"{_LAYERS[backend]} It trains with this."))
    for module_name in _LAYERS:
        for name in public[module_name] & layers:
            own = links.setdefault(f"{module_name}.{name}", [])
            for other, text in _LAYERS.items():
                if other != module_name and name in public[other]:
                    own.append((f"{other}.{name}", text))
            functions = module_name if module_name in _IMPLEMENTATIONS else "diveq.backends.jax"
            for function in (f for f, layer in _LAYER_OF.items() if layer == name):
                own.append((f"{functions}.{function}", "The function it trains with."))
                if functions != "diveq.reference":
                    own.append((f"diveq.reference.{function}", "Its formulas."))
    return {k: v for k, v in links.items() if v}


def _is_header(lines: list[str], i: int) -> bool:
    under = lines[i + 1].strip() if i + 1 < len(lines) else ""
    return bool(lines[i].strip()) and len(under) >= 3 and set(under) == {"-"}


def _see_also(app, what, name, obj, options, lines):
    """Append the page's twins (:func:`_related_links`) to its numpydoc "See Also" section,
    skipping the ones it already lists. Runs before numpydoc parses the docstring."""
    links = _related_links().get(name)
    if not links:
        return
    headers = [i for i in range(len(lines)) if _is_header(lines, i)]
    titles = {lines[i].strip(): i for i in headers}
    if "See Also" in titles:
        start = titles["See Also"] + 2
        end = next((i for i in headers if i > start), len(lines))
        while end > start and not lines[end - 1].strip():
            end -= 1
        listed = " ".join(line.split(" : ")[0] for line in lines[start:end] if line[:1] != " ")
        entries = [f"{t} : {d}" for t, d in links if t not in listed.replace(",", " ").split()]
        lines[end:end] = entries
        return
    entries = ["See Also", "--------", *(f"{t} : {d}" for t, d in links), ""]
    later = [titles[t] for t in ("Notes", "References", "Examples") if t in titles]
    at = min(later) if later else len(lines)
    if not later:
        entries = ["", *entries]
    lines[at:at] = entries


def _skip_field_members(app, what, name, obj, skip, options):
    """Hide members that only restate fields the class docstring documents: NamedTuple field
    accessors ("Alias for field number N") and dataclass fields whose default is a type (e.g.
    ``dtype = jnp.float32``, which autodoc would render as "alias of float32")."""
    if what != "class":
        return None
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    if isinstance(obj, type) and name[:1].islower():
        return True
    return None


def _is_public(cls) -> bool:
    for module_name in PUBLIC_NAMESPACES:
        module = sys.modules.get(module_name)
        public = getattr(module, "__all__", ())
        if cls.__name__ in public and getattr(module, cls.__name__, None) is cls:
            return True
    return False


def _public_bases(app, name, obj, options, bases):
    """Show the public ancestors instead of private base classes (the layers' shared bases
    live in private modules and are not exported)."""

    def expand(base):
        if getattr(base, "__module__", "").startswith("diveq") and not _is_public(base):
            return [b for parent in base.__bases__ for b in expand(parent)]
        return [base]

    shown = []
    for b in (b for base in bases for b in expand(base)):
        if b not in shown:
            shown.append(b)
    if len(shown) > 1 and object in shown:
        shown.remove(object)
    bases[:] = shown


def _check_public_api(app, env):
    documented = set(env.domains.python_domain.objects)
    for module_name, page in PUBLIC_NAMESPACES.items():
        try:
            module = importlib.import_module(module_name)
        except Exception as err:  # any import failure becomes a doc warning
            _logger.warning("public namespace %s does not import: %r", module_name, err)
            continue
        missing = [
            name
            for name in getattr(module, "__all__", [])
            if f"{module_name}.{name}" not in documented
        ]
        if missing:
            _logger.warning(
                "%s: public names not documented (add them to docs/%s.rst): %s",
                module_name,
                page,
                ", ".join(missing),
            )


def _readable_defaults(app, what, name, obj, options, signature, return_annotation):
    """``dtype=jax.numpy.float32``, not ``dtype=<class 'jax.numpy.float32'>``: a dataclass's
    generated ``__init__`` has no source for ``autodoc_preserve_defaults`` to show. Linen's
    ``parent=<flax.linen.module._Sentinel object>`` (set by Flax, never by a user) is left out.
    A class whose metaclass hides ``__init__`` (Flax NNX's ``(*args, **kwargs)``) shows it."""
    if what == "class" and signature and signature.startswith("(*args") and inspect.isclass(obj):
        init = inspect.signature(obj.__init__)
        plain = [p.replace(annotation=p.empty) for p in list(init.parameters.values())[1:]]
        signature = str(init.replace(parameters=plain, return_annotation=init.empty))
    if signature:
        signature = re.sub(r"<class '([\w.]+)'>", r"\1", signature)
        signature = re.sub(
            r",?\s*parent(: [^=,]+)?=<flax\.linen\.[\w.]+ object(?: at \w+)?>", "", signature
        )
    return signature, return_annotation


def _drop_bases_object(app, domain, objtype, contentnode):
    """Drop "Bases: object", which says nothing (a public class whose bases are private)."""
    for paragraph in contentnode.findall(nodes.paragraph):
        if paragraph.astext() == "Bases: object":
            paragraph.parent.remove(paragraph)
            break


def setup(app):
    app.connect("autodoc-process-docstring", _see_also, priority=400)  # before numpydoc
    app.connect("autodoc-process-signature", _readable_defaults)
    app.connect("object-description-transform", _drop_bases_object)
    app.connect("autodoc-skip-member", _skip_field_members)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("env-check-consistency", _check_public_api)
    return {"parallel_read_safe": True}
