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

import importlib
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
# Every name in ``__all__`` of each public namespace must be documented under that namespace
# (SPEC section 10; "every public name is documented"). A missing one is a warning, so the
# ``-W`` build fails and names the page to extend.
PUBLIC_NAMESPACES = {
    "diveq": "api/diveq",
    "diveq.reference": "api/reference",
    "diveq.core": "api/core",
    "diveq.backends.torch": "api/torch",
    "diveq.backends.jax": "api/jax",
    "diveq.testing": "api/testing",
    "diveq.compat.official": "api/compat",
}

_logger = logging.getLogger("diveq.docs")

# -- "Elsewhere in diveq": each function and layer page links its twins ---------------------------
# (the same name in the other implementations, the reference's VJP, the layer that runs an
# estimator and back), rendered by docs/_templates/autosummary/{function,class}.rst.
_IMPLEMENTATIONS = {
    "diveq.reference": "NumPy reference (formulas)",
    "diveq.core": "array-API core",
    "diveq.backends.torch": "PyTorch",
    "diveq.backends.jax": "JAX",
}
_LAYER_OF = {  # estimator -> the layer class that trains with it
    "diveq": "DiVeQ",
    "sf_diveq": "SFDiVeQ",
    "product_diveq": "ProductDiVeQ",
    "product_sf_diveq": "ProductDiVeQ",
    "residual_diveq": "ResidualDiVeQ",
    "residual_sf_diveq": "ResidualDiVeQ",
}


def _related_links() -> dict[str, list[tuple[str, str]]]:
    public: dict[str, set[str]] = {}
    for module_name in _IMPLEMENTATIONS:
        try:
            public[module_name] = set(importlib.import_module(module_name).__all__)
        except Exception:  # reported by _check_public_api
            public[module_name] = set()
    links: dict[str, list[tuple[str, str]]] = {}
    for module_name, names in public.items():
        for name in names:
            own = links.setdefault(f"{module_name}.{name}", [])
            for other, label in _IMPLEMENTATIONS.items():
                if other != module_name and name in public[other]:
                    own.append((label, f"{other}.{name}"))
            if f"{name}_vjp" in public["diveq.reference"]:
                own.append(("gradient (VJP)", f"diveq.reference.{name}_vjp"))
            layer = _LAYER_OF.get(name)
            for backend in ("diveq.backends.torch", "diveq.backends.jax"):
                if layer in public[backend]:
                    label = f"{_IMPLEMENTATIONS[backend]} layer"
                    own.append((label, f"{backend}.{layer}"))
            for function, layer_name in _LAYER_OF.items():
                if layer_name == name and function in names:
                    own.append(("estimator", f"{module_name}.{function}"))
                    own.append(("formulas", f"diveq.reference.{function}"))
    return {k: v for k, v in links.items() if v}


autosummary_context = {"related": _related_links()}


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
        if module is not None and getattr(module, cls.__name__, None) is cls:
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


# -- docstrings that cite the team's contract ----------------------------------------------------
# Some docstrings cite "SPEC section 7", a file readers do not have. Their pages link the
# section of these docs that states the same fact instead (docs/check_site.py fails on any
# pointer left on the key pages).
_SPEC_SECTIONS = {
    "1": ":ref:`semantics-notation`",
    "2": ":ref:`semantics-diveq`",
    "3": ":ref:`semantics-sf-diveq`",
    "4": ":ref:`semantics-inference`",
    "5": ":ref:`semantics-composite`",
    "6": ":ref:`semantics-randomness`",
    "7": ":ref:`semantics-training-state`",
    "8": ":ref:`semantics-checks`",
    "9": ":doc:`/differences`",
    "10": ":doc:`/api/index`",
    "11": ":ref:`semantics-baselines`",
}
_SPEC_POINTER = re.compile(r"SPEC\s+sections?\s+(\d+(?:(?:,\s*|\s+and\s+|/)\d+)*)")


def _spec_to_docs(app, what, name, obj, options, lines):
    text = "\n".join(lines)
    if "SPEC" not in text:
        return
    text = _SPEC_POINTER.sub(
        lambda m: "see " + ", ".join(_SPEC_SECTIONS[n] for n in re.findall(r"\d+", m[1])), text
    )
    text = re.sub(r"\bSPEC\s+contract\b", "contract", text)
    lines[:] = text.split("\n")


def _readable_defaults(app, what, name, obj, options, signature, return_annotation):
    """``dtype=jax.numpy.float32``, not ``dtype=<class 'jax.numpy.float32'>``: a dataclass's
    generated ``__init__`` has no source for ``autodoc_preserve_defaults`` to show."""
    if signature:
        signature = re.sub(r"<class '([\w.]+)'>", r"\1", signature)
    return signature, return_annotation


def _drop_bases_object(app, domain, objtype, contentnode):
    """Drop "Bases: object", which says nothing (a public class whose bases are private)."""
    for paragraph in contentnode.findall(nodes.paragraph):
        if paragraph.astext() == "Bases: object":
            paragraph.parent.remove(paragraph)
            break


def setup(app):
    app.connect("autodoc-process-docstring", _spec_to_docs)
    app.connect("autodoc-process-signature", _readable_defaults)
    app.connect("object-description-transform", _drop_bases_object)
    app.connect("autodoc-skip-member", _skip_field_members)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("env-check-consistency", _check_public_api)
    return {"parallel_read_safe": True}
