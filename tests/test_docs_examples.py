"""The documentation's examples run as written and print what the pages show.

Every ``.. code-block:: python`` of the landing page and of ``docs/tutorials/*.rst`` is executed, in order, in one
namespace per page (a page is one session), inside a temporary folder. A ``.. code-block:: text`` that follows a
Python block (before the next Python block) is that block's output: what the block prints must equal it, token by
token, with numbers compared as numbers. A Monte Carlo value that may move in its last digits (another torch build,
BLAS) gets a tolerance from an rST comment just before the output block, which the reader does not see::

    .. tolerance: 0.02

means every number of the next output may differ by 0.02 (absolute). ``.. example: skip`` before a Python block
leaves it out (for a block that needs a cluster; say so on the page). The same convention holds in the README:
a ```` ```python ```` fence followed by a ```` ```text ```` fence is checked the same way.

Writing a page: ``python tests/test_docs_examples.py docs/tutorials/PAGE.rst`` prints what each block prints.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [DOCS / "index.rst"] + sorted(p for p in (DOCS / "tutorials").glob("*.rst") if p.name != "index.rst")
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@dataclass
class Block:
    code: str
    line: int
    expected: str | None = None
    tolerance: float = 0.0
    skip: bool = False


def _rst_blocks(text: str) -> list[Block]:
    """Python blocks of an rST page with the text block that follows each (its output), tolerances, skips."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending_tol, pending_skip = 0.0, False
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)\.\. code-block:: (\w+)\s*$", line)
        comment = re.match(r"^\s*\.\. (tolerance|example): (.+)$", line)
        if comment:
            if comment.group(1) == "tolerance":
                pending_tol = float(comment.group(2))
            else:
                pending_skip = comment.group(2).strip() == "skip"
            i += 1
            continue
        if not m:
            i += 1
            continue
        indent, lang = len(m.group(1)), m.group(2)
        start, j = i + 1, i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith(" " * (indent + 1))):
            j += 1
        body = [ln for ln in lines[start:j]]
        while body and body[0].strip().startswith(":"):  # directive options
            body.pop(0)
        content = "\n".join(body).strip("\n")
        pad = min((len(ln) - len(ln.lstrip()) for ln in content.splitlines() if ln.strip()), default=0)
        content = "\n".join(ln[pad:] for ln in content.splitlines())
        if lang == "python":
            blocks.append(Block(content + "\n", start + 1, skip=pending_skip))
            pending_skip = False
        elif lang == "text" and blocks and blocks[-1].expected is None and not _python_between(lines, blocks[-1], i):
            blocks[-1].expected, blocks[-1].tolerance = content, pending_tol
        pending_tol = 0.0
        i = j
    return blocks


def _python_between(lines: list[str], block: Block, i: int) -> bool:
    return any(re.match(r"^\s*\.\. code-block:: python", ln) for ln in lines[block.line:i])


def _markdown_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    for m in re.finditer(r"```(python|text)\n(.*?)```", text, flags=re.S):
        if m.group(1) == "python":
            blocks.append(Block(m.group(2), text[: m.start()].count("\n") + 2))
        elif blocks and blocks[-1].expected is None and text[:m.start()].rstrip().endswith("```"):
            blocks[-1].expected = m.group(2).strip("\n")
    return blocks


def blocks_of(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return _markdown_blocks(text) if path.suffix == ".md" else _rst_blocks(text)


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(f"({NUMBER.pattern})|\\s+", text.strip()) if t]


def same_output(actual: str, expected: str, tolerance: float) -> str | None:
    """None when ``actual`` matches ``expected`` (numbers within ``tolerance``), else a description."""
    got, want = _tokens(actual), _tokens(expected)
    if len(got) != len(want):
        return f"{len(got)} tokens printed, {len(want)} shown"
    for g, w in zip(got, want):
        if NUMBER.fullmatch(w) and NUMBER.fullmatch(g):
            if abs(float(g) - float(w)) > tolerance + 1e-12 * abs(float(w)):
                return f"printed {g}, the page shows {w} (tolerance {tolerance})"
        elif g != w:
            return f"printed {g!r}, the page shows {w!r}"
    return None


def run_page(path: Path, check: bool = True) -> list[tuple[Block, str]]:
    """Execute a page's Python blocks in one namespace; with ``check``, assert each shown output."""
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    done = []
    for block in blocks_of(path):
        if block.skip:
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block.code, f"{path}:{block.line}", "exec"), namespace)  # noqa: S102 - our own pages
        printed = out.getvalue()
        if check and block.expected is not None:
            problem = same_output(printed, block.expected, block.tolerance)
            assert problem is None, (f"{path.relative_to(ROOT)}, block at line {block.line}: {problem}\n"
                                     f"--- printed:\n{printed}--- shown:\n{block.expected}")
        done.append((block, printed))
    return done


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).with_suffix("").as_posix() for p in PAGES])
def test_page_examples_print_what_the_page_shows(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a page that starts a process (sweeps.rst: the command line) runs this checkout's toyrobust there too
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    blocks = blocks_of(page)
    assert blocks, f"{page} has no Python example"
    import toyrobust as tr
    from toyrobust.distributions.base import unregister_distribution

    distributions, attacks = set(tr.registered_distributions()), set(tr.ATTACKS)
    try:
        run_page(page)
    finally:  # a page that registers a distribution or an attack (extending.rst) leaves no trace for later tests
        for name in set(tr.registered_distributions()) - distributions:
            unregister_distribution(name)
        for name in set(tr.ATTACKS) - attacks:
            tr.ATTACKS.pop(name)


def test_every_tutorial_shows_outputs():
    for page in PAGES:
        shown = [b for b in blocks_of(page) if b.expected is not None]
        assert shown, f"{page.relative_to(ROOT)}: no output shown under any example"


def test_the_comparison_is_strict_where_it_should_be():
    assert same_output("0.2 ok\n", "0.2  ok", 0.0) is None
    assert same_output("0.21 ok", "0.2 ok", 0.0) is not None
    assert same_output("0.21 ok", "0.2 ok", 0.02) is None
    assert same_output("tensor([False])", "False", 0.0) is not None
    assert same_output("a b", "a", 0.0) is not None


def test_readme_outputs_are_checked_when_shown():
    """The README follows the same convention: a ```text fence right after a ```python fence is its output."""
    readme = ROOT / "README.md"
    shown = [b for b in _markdown_blocks(readme.read_text(encoding="utf-8")) if b.expected is not None]
    if not shown:
        pytest.skip("the README shows no output blocks (its examples run in tests/test_readme.py)")
    run_page(readme)


if __name__ == "__main__":  # print what each block of a page prints, for writing the page
    for page in [Path(arg).resolve() for arg in sys.argv[1:]]:
        os.chdir(tempfile.mkdtemp(prefix="toyrobust-docs-"))  # the pages write files (sweep stores)
        for block, printed in run_page(page, check=False):
            sys.stdout.write(f"--- line {block.line}\n{printed}")
