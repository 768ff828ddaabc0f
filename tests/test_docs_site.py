"""The site covers the package: every public name, attack, distribution, command and figure has its page.

Text checks of ``docs/`` (no Sphinx needed; the build itself runs in ``.ci/run`` with warnings as errors).
"""

from __future__ import annotations

import re
from pathlib import Path

import toyrobust as tr
from toyrobust.clibase import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = "\n".join(p.read_text(encoding="utf-8") for p in sorted((DOCS / "api").glob("*.rst")))


def _documented(name: str) -> bool:
    """An ``auto*`` directive (or a page section) names ``name``: ``.. autoclass:: Tsipras`` with
    ``currentmodule:: toyrobust``, or a dotted path ending in it."""
    return re.search(rf"^\.\. auto\w+:: (toyrobust\.)?([\w.]*\.)?{re.escape(name)}\s*$", API, flags=re.M) is not None


def test_every_public_name_has_an_api_entry():
    modules = {n for n in tr.__all__ if isinstance(getattr(tr, n), type(tr))}
    missing = [n for n in tr.__all__ if n not in modules and not _documented(n)]
    assert not missing, f"public names with no autodoc entry in docs/api/*.rst: {missing}"


def test_every_registered_attack_and_distribution_is_documented():
    missing = [cls.__name__ for cls in list(tr.ATTACKS.values()) + list(tr.registered_distributions().values())
               if not _documented(cls.__name__)]
    assert not missing, f"registered classes with no autodoc entry in docs/api/*.rst: {missing}"


def test_every_command_has_its_help_on_the_cli_page():
    page = (DOCS / "api" / "cli.rst").read_text(encoding="utf-8")
    shown = set(re.findall(r"^\.\. toyrobust-help:: (\S+)", page, flags=re.M))
    assert shown == set(COMMANDS), f"toyrobust-help directives {sorted(shown)} != commands {sorted(COMMANDS)}"
    assert re.search(r"^\.\. toyrobust-help::\s*$", page, flags=re.M), "the top-level --help is missing"


def test_every_figure_script_is_in_the_gallery():
    page = (DOCS / "gallery.rst").read_text(encoding="utf-8")
    shown = re.findall(r"^\.\. toyrobust-figure:: (\S+)", page, flags=re.M)
    scripts = sorted(p.stem for p in (ROOT / "analyses").glob("*.py") if not p.name.startswith("_"))
    assert sorted(shown) == scripts, f"gallery entries {sorted(shown)} != analyses scripts {scripts}"
    for name in shown:
        assert (ROOT / "figures" / f"{name}.png").exists(), f"figures/{name}.png is missing"
        body = page.split(f".. toyrobust-figure:: {name}", 1)[1].split("\n---", 1)[0]
        assert "**Source:**" in body and ("**Equation" in body), f"gallery entry {name}: no source or equation"


def test_every_tutorial_is_in_the_toctree():
    index = (DOCS / "tutorials" / "index.rst").read_text(encoding="utf-8")
    listed = set(re.findall(r"^   (\w+)\s*$", index, flags=re.M))
    pages = {p.stem for p in (DOCS / "tutorials").glob("*.rst")} - {"index"}
    assert listed == pages


def test_the_site_builds_offline():
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    assert "sphinx.ext.intersphinx" not in conf and "sphinx-mathjax-offline" in conf
    assert "docs/_build" in (ROOT / ".gitignore").read_text(encoding="utf-8")
