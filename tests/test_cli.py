"""The command line: describe, help, and one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest

from toyrobust.cli import main


def test_describe_tsipras(capsys):
    assert main(["describe", "tsipras", "--param", "p=0.9", "--param", "eta=3"]) == 0
    out = capsys.readouterr().out
    assert "Tsipras(p=0.9, eta=3.0, d=1)" in out
    assert "{-1, 1} x R^1" in out
    assert "6.0*x_2" in out and "x_1" in out


def test_describe_symbolic_json(capsys):
    assert main(["describe", "robust-nonrobust", "--param", "D=D", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dimension"] == "D"
    assert "Sum" in info["log-odds"] and "log(D)" in info["log-odds"]


@pytest.mark.parametrize("argv,needle", [
    (["describe", "tsipras", "--param", "p=1.5"], "p must be"),
    (["describe", "nope"], "unknown distribution"),
    (["describe", "tsipras", "--param", "q=1"], "no parameter 'q'"),
    (["describe", "tsipras", "--param", "p"], "NAME=VALUE"),
    (["describe", "spheres", "--param", "r_inner=2", "--param", "r_outer=1"], "r_inner must be < r_outer"),
    (["describe", "tsipras", "--param", "d=1.5"], "integer"),
    (["describe", "tsipras", "--param", "p=__import__('os')"], "number or a symbol"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
    (["bounds", "spheres", "--mu", "-1"], "mu must be a measure in [0, 1], got -1.0"),
    (["bounds", "spheres", "--mu", "nan"], "got nan"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_console_script_help_and_exit_codes():
    run = subprocess.run([sys.executable, "-m", "toyrobust.cli", "describe", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "--param" in run.stdout
    run = subprocess.run([sys.executable, "-m", "toyrobust.cli", "describe", "spheres", "--param", "dim=1"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "dim" in run.stderr


def test_top_level_help_needs_no_toolkit_and_matches_the_full_parser():
    import json
    import subprocess
    import sys

    from toyrobust.cli import build_parser
    from toyrobust.launcher import COMMANDS

    # the launcher lists exactly the full parser's commands, with the same help lines
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert {c.dest: c.help for c in sub._choices_actions} == COMMANDS
    # and answers --help / --version without loading sympy, scipy or torch
    code = ("import contextlib, io, json, sys\nfrom toyrobust.launcher import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n    rc = main(['--help'])\n"
            "print(json.dumps([rc, 'COMMAND' in out.getvalue(), sorted(m for m in ('sympy', 'scipy', 'torch') "
            "if m in sys.modules)]))")
    rc, listed, heavy = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                  check=True).stdout)
    assert rc == 0 and listed and heavy == []
