"""Sphinx configuration for the diveq documentation.

Build: ``make docs`` (``sphinx-build -W --keep-going -b html docs docs/_build/html``).
The build is offline: intersphinx inventories are fetched only when the environment variable
``DIVEQ_DOCS_INTERSPHINX=1`` is set. Autosummary stubs are generated at build time into
``docs/api/generated/`` (git-ignored).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from sphinx.util import logging

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document the working tree, not an installed copy

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
    "numpydoc",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "code"  # `x` renders as code, never as a (possibly unresolved) cross-reference
nitpicky = False

# -- autodoc / autosummary ---------------------------------------------------------------------
autosummary_generate = True  # stubs go to the :toctree: of each directive (api/generated/)
autosummary_generate_overwrite = True
autodoc_typehints = "none"  # numpydoc "Parameters" carry the types; signatures stay readable
autodoc_member_order = "bysource"
add_module_names = False

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
}
html_show_sourcelink = False

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


def setup(app):
    app.connect("autodoc-skip-member", _skip_field_members)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("env-check-consistency", _check_public_api)
    return {"parallel_read_safe": True}
