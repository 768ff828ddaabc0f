"""Apply benchmarks/auto_lirpa_0.3_torch2.13.patch to the installed auto_LiRPA 0.3 (see benchmarks/README.md).

auto_LiRPA 0.3's parse_graph.py imports two private helpers from torch.onnx and relies on ``torch._C.Node.__getitem__``,
which torch's ONNX package used to add; torch 2.13 moved the helpers under ``torch.onnx._internal.torchscript_exporter``
and no longer adds the method. The patch falls back to the new locations. Run it with the environment's python:

    python benchmarks/patch_auto_lirpa.py        # idempotent: says so when the file is already patched
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PATCH = Path(__file__).with_name("auto_lirpa_0.3_torch2.13.patch")


def _hunk(patch: str) -> tuple[str, str, str]:
    """(target path relative to site-packages, old text, new text) of the patch's single hunk."""
    lines = patch.splitlines(keepends=True)
    target = lines[1].split()[1].removeprefix("b/")
    old, new = [], []
    for line in lines[3:]:
        tag, body = line[:1], line[1:]
        if tag in (" ", "-"):
            old.append(body)
        if tag in (" ", "+"):
            new.append(body)
    return target, "".join(old), "".join(new)


def main() -> int:
    spec = importlib.util.find_spec("auto_LiRPA")  # finds the package without importing it (the import fails)
    if spec is None or not spec.submodule_search_locations:
        print("auto_LiRPA is not installed in this environment", file=sys.stderr)
        return 1
    site = Path(next(iter(spec.submodule_search_locations))).parent
    target, old, new = _hunk(PATCH.read_text())
    path = site / target
    text = path.read_text()
    if new in text:
        print(f"already patched: {path}")
        return 0
    if old not in text:
        print(f"{path} does not match the patch (not auto_LiRPA 0.3?)", file=sys.stderr)
        return 1
    path.write_text(text.replace(old, new, 1))
    print(f"patched {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
