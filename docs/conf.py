"""Sphinx configuration for the isolated-workers documentation.

The docs build offline by default. Set ``DOCS_INTERSPHINX=1`` to link to the Python,
AnyIO, Trio, attrs and msgpack docs instead of ignoring references into them.
"""

from __future__ import annotations

import builtins
import inspect
import os
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any

# -- Project -----------------------------------------------------------------

project = "isolated-workers"
author = "the isolated-workers authors"
copyright = f"2026, {author}"
try:
    release = dist_version("isolated-workers")
except PackageNotFoundError:  # building from a checkout without installing it
    release = "unknown"
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinxcontrib_trio",
]
exclude_patterns = ["_build"]
default_role = "obj"
nitpicky = True

autodoc_member_order = "bysource"

napoleon_google_docstring = True
napoleon_numpy_docstring = False

# -- Cross-references ---------------------------------------------------------

if os.environ.get("DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "anyio": ("https://anyio.readthedocs.io/en/stable", None),
        "trio": ("https://trio.readthedocs.io/en/stable", None),
        "attrs": ("https://www.attrs.org/en/stable", None),
        "msgpack": ("https://msgpack-python.readthedocs.io/en/latest", None),
    }
else:
    # Offline, references into other projects cannot resolve; with -W and
    # nitpicky they would fail the build, so they are ignored here instead.
    _EXTERNAL_MODULES = [
        "abc",
        "anyio",
        "asyncio",
        "attr",
        "attrs",
        "builtins",
        "collections",
        "contextlib",
        "enum",
        "json",
        "logging",
        "msgpack",
        "os",
        "pathlib",
        "signal",
        "socket",
        "subprocess",
        "sys",
        "trio",
        "types",
        "typing",
        "typing_extensions",
    ]
    _BUILTIN_NAMES = sorted(n for n in dir(builtins) if not n.startswith("_"))
    nitpick_ignore_regex = [
        (r"py:.*", rf"({'|'.join(_EXTERNAL_MODULES)})\..*"),
        (r"py:.*", rf"({'|'.join(_BUILTIN_NAMES)})"),
    ]

# -- HTML --------------------------------------------------------------------

html_theme = "sphinx_rtd_theme"
html_title = f"isolated-workers {release}"


# -- Signatures --------------------------------------------------------------


def _drop_context_manager_return(
    app: Any,
    what: str,
    name: str,
    obj: object,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str] | None:
    """``async with open_worker(...) as worker`` says what it yields; the
    ``AsyncIterator[...]`` of the generator behind it would only confuse."""
    wrapped = getattr(obj, "__wrapped__", None)
    if what == "function" and inspect.isasyncgenfunction(wrapped):
        return signature, ""
    return None


def setup(app: Any) -> None:
    app.connect("autodoc-process-signature", _drop_context_manager_return)
