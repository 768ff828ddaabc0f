"""Sphinx directives of the toyrobust site, generated from the code at build time so they never go stale.

``.. toyrobust-help:: COMMAND``
    The ``--help`` text of ``toyrobust COMMAND`` (of ``toyrobust`` itself without an argument), from the same
    argparse parser the console script uses (:func:`toyrobust.cli.build_parser`).

``.. toyrobust-attacks::``
    A table of the attack registry: every registered attack's name, class, kind and options.

``.. toyrobust-figure:: NAME``
    One entry of the figure gallery: ``figures/NAME.png`` (linked to its PDF), the docstring of
    ``analyses/NAME.py`` (what the figure shows and how), the command that rebuilds it, and downloads of the script
    and of every CSV ``figures/NAME*.csv``. The directive's content (the source document and the equation the
    figure reproduces, written by hand) comes first. A missing script or image is a build error.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList

ROOT = Path(__file__).resolve().parents[2]


def command_help(command: str | None) -> str:
    """The ``--help`` text of ``toyrobust COMMAND`` (or of ``toyrobust`` for None), as the console prints it."""
    from toyrobust.cli import build_parser

    parser = build_parser()
    if not command:
        return parser.format_help()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")  # noqa: SLF001
    if command not in sub.choices:
        raise ValueError(f"toyrobust has no command {command!r}; commands: {', '.join(sub.choices)}")
    return sub.choices[command].format_help()


class ToyrobustHelp(Directive):
    optional_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        command = self.arguments[0] if self.arguments else None
        try:
            text = command_help(command)
        except ValueError as err:
            raise self.error(str(err)) from err
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def figure_docstring(name: str) -> tuple[str, str]:
    """The summary line and the body of ``analyses/NAME.py``'s module docstring."""
    path = ROOT / "analyses" / f"{name}.py"
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    summary, _, body = inspect.cleandoc(doc).partition("\n")
    return summary.strip(), body.strip()


def plain_text_rst(text: str) -> str:
    """A docstring written as plain text with ````literals````, safe as reStructuredText: ``|`` outside literals
    (absolute values such as ``|w_i|``) would start a substitution, so it is escaped."""
    parts = re.split(r"(``.*?``)", text, flags=re.S)
    return "".join(p if p.startswith("``") else p.replace("|", "\\|") for p in parts)


def figure_rst(name: str, docs_dir: Path, content: list[str]) -> list[str]:
    """The reStructuredText of one gallery entry (paths relative to the page's folder ``docs_dir``)."""
    script = ROOT / "analyses" / f"{name}.py"
    png, pdf = ROOT / "figures" / f"{name}.png", ROOT / "figures" / f"{name}.pdf"
    for path in (script, png):
        if not path.exists():
            raise FileNotFoundError(f"gallery entry {name!r}: {path.relative_to(ROOT)} does not exist")
    rel = lambda p: Path("/".join([".."] * len(docs_dir.relative_to(ROOT).parts))) / p.relative_to(ROOT)  # noqa: E731
    summary, body = figure_docstring(name)
    csvs = sorted((ROOT / "figures").glob(f"{name}.csv")) + sorted((ROOT / "figures").glob(f"{name}-*.csv"))
    lines = [f".. figure:: {rel(png).as_posix()}", f"   :alt: {summary}", "   :class: toyrobust-figure"]
    if pdf.exists():
        lines.append(f"   :target: {rel(pdf).as_posix()}")
    lines += ["", f"   {summary}", ""]
    lines += [line for line in content] + [""]
    lines += [f"**Command:** ``python analyses/{name}.py`` (full size, the committed figure) or "
              f"``toyrobust reproduce --only {name} --quick`` (test size, into ``figures/quick/``).", ""]
    lines += ["**Files:** " + ", ".join(
        [f":download:`analyses/{name}.py <{rel(script).as_posix()}>`"]
        + [f":download:`{p.name} <{rel(p).as_posix()}>`" for p in csvs]
        + ([f":download:`{pdf.name} <{rel(pdf).as_posix()}>`"] if pdf.exists() else [])), ""]
    lines += [".. rubric:: What the script computes (its docstring)", ""]
    lines += plain_text_rst(body).splitlines() + [""]
    return lines


class ToyrobustFigure(Directive):
    required_arguments = 1
    has_content = True
    option_spec = {"class": directives.class_option}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        source = Path(self.state.document.current_source).resolve()
        try:
            text = figure_rst(name, source.parent, list(self.content))
        except FileNotFoundError as err:
            raise self.error(str(err)) from err
        container = nodes.container(classes=["toyrobust-gallery-entry"])
        self.state.nested_parse(StringList(text, source=f"<toyrobust-figure {name}>"), self.content_offset,
                                container)
        return [container]


def attack_table_rst() -> list[str]:
    """A table of the attack registry: name (and aliases), class, kind, randomized, options with defaults."""
    import inspect as _inspect

    from toyrobust.attacks import ATTACKS

    lines = [".. list-table:: The attack registry (``tr.attacks.ATTACKS``), read at build time", "   :header-rows: 1",
             "   :widths: 20 22 14 10 34", "", "   * - name", "     - class", "     - kind", "     - randomized",
             "     - options (defaults)"]
    for name, cls in ATTACKS.items():
        params = [p for p in _inspect.signature(cls.__init__).parameters.values() if p.name != "self"
                  and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        options = ", ".join(f"``{p.name}={p.default!r}``" if p.default is not p.empty else f"``{p.name}``"
                            for p in params) or "none"
        aliases = "".join(f", ``{a}``" for a in cls.aliases)
        lines += [f"   * - ``{name}``{aliases}", f"     - :class:`~{cls.__module__}.{cls.__name__}`",
                  f"     - {cls.kind}", f"     - {'yes' if cls.randomized else 'no'}", f"     - {options}"]
    return lines + [""]


class ToyrobustAttacks(Directive):
    has_content = False

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(attack_table_rst(), source="<toyrobust-attacks>"), self.content_offset,
                                container)
        return container.children


def setup(app):  # noqa: ANN001, ANN201 - Sphinx's signature
    app.add_directive("toyrobust-help", ToyrobustHelp)
    app.add_directive("toyrobust-figure", ToyrobustFigure)
    app.add_directive("toyrobust-attacks", ToyrobustAttacks)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
