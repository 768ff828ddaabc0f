"""Sphinx configuration of the toyrobust site: ``sphinx-build -W -b html docs docs/_build/html`` (offline)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the checkout's toyrobust, installed or not
sys.path.insert(0, str(DOCS / "_ext"))
os.environ["COLUMNS"] = "80"  # argparse wraps --help at this width (the page's code width), on every machine

import toyrobust  # noqa: E402

project = "toyrobust"
author = "the toyrobust developers"
copyright = "toyrobust developers, MIT licence"  # noqa: A001 - Sphinx's name
release = version = toyrobust.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static: maths renders with no network
    "toyrobust_docs",  # the command line's --help, the figure gallery
]

# nothing is fetched at build time: no intersphinx, MathJax served from _static
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True
# the Attack base class lists what a subclass sets under this heading
napoleon_custom_sections = [("Class data a subclass sets", "params_style")]

templates_path: list[str] = []
exclude_patterns = ["_build"]
default_role = "code"  # `x` in the hand-written pages is code, like `` x ``

html_theme = "furo"
html_title = f"toyrobust {release}"
html_static_path = ["_static"]
html_css_files = ["toyrobust.css"]
html_theme_options = {"navigation_with_keys": True}
html_show_sourcelink = False
