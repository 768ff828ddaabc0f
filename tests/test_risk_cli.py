"""The ``toyrobust risk`` command: values, closed forms, JSON, LaTeX, and one-line errors with exit status 2."""

import json
import math
import subprocess
import sys

import mpmath
import pytest

from toyrobust.cli import main


def run_json(argv, capsys):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tsipras_bayes_linf_value_and_formula(capsys):
    info = run_json(["risk", "tsipras", "--param", "p=0.9", "--param", "eta=3", "--classifier", "bayes",
                     "--threat", "linf:0.5"], capsys)
    # independent value: margin L x1 + 6 x2 (L = log 9) loses eps (L + 6) over the Linf ball
    L = mpmath.log(9)
    drop = mpmath.mpf("0.5") * (L + 6)
    ref = sum(wt * mpmath.ncdf(-(s * L + 18 - drop) / 6) for wt, s in ((0.45, 1), (0.05, -1))) * 2
    assert info["value"] == pytest.approx(float(ref), rel=1e-12)
    assert info["log_value"] == pytest.approx(math.log(info["value"]), rel=1e-12)
    assert "Q(" in info["closed form"] and info["method"].startswith("closed form")
    assert info["where"]["c"] == pytest.approx(0.5 * (float(L) + 6))


def test_symbolic_parameters_give_a_formula(capsys):
    info = run_json(["risk", "robust-nonrobust", "--param", "D=D", "--classifier", "robust", "--threat", "linf:eps",
                     "--latex"], capsys)
    assert info["value"] is None and info["closed form"] == "Q(1 - eps)"
    assert info["latex"] == r"Q\left(1 - eps\right)"
    info = run_json(["risk", "robust-nonrobust", "--param", "D=D"], capsys)
    assert info["closed form"] == "Q(sqrt(log(D) + 1))"


def test_table_output_point_masses_projection(capsys):
    assert main(["risk", "point-masses", "--param", "gap=1", "--classifier", "maxmargin", "--threat", "l2:3",
                 "--definition", "projection"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(None, 1) for line in out.strip().splitlines() if line.split())
    assert lines["value"].strip() == "0" and lines["definition"].strip() == "projection"


def test_linear_spec_with_bias_and_coords(capsys):
    info = run_json(["risk", "gaussian-mixture", "--param", "mean=1,2", "--param", "sigma=1", "--classifier",
                     "linear:1,2:0.5", "--threat", "l2:0.3", "--coords", "1:", "--definition", "error-region"],
                    capsys)
    assert 0 < info["value"] < 1 and info["threat"].startswith("L2(eps=0.3, coords=slice(1")


@pytest.mark.parametrize("argv,needle", [
    (["risk", "tsipras", "--param", "d=2", "--classifier", "linear:1,0.5,0.2", "--threat", "l2:0.3",
      "--definition", "projection"], "estimate_risk"),
    (["risk", "tsipras", "--classifier", "linear:1,2,3"], "dimension"),
    (["risk", "tsipras", "--threat", "linf:-1"], "eps must be"),
    (["risk", "tsipras", "--threat", "l7:1"], "not understood"),
    (["risk", "tsipras", "--classifier", "wavelet"], "not understood"),
    (["risk", "tsipras", "--classifier", "linear:1,x y"], "number or a symbol"),
    (["risk", "point-masses", "--classifier", "robust"], "dimension >= 2"),
    (["risk", "tsipras", "--classifier", "maxmargin"], "maxmargin"),
    (["risk", "tsipras", "--definition", "nope"], "invalid choice"),
    (["risk", "tsipras", "--coords", "1:"], "--coords needs --threat"),
    (["risk", "tsipras", "--threat", "linf:1", "--coords", "a"], "--coords"),
    (["risk", "tsipras", "--threat", "linf:1", "--coords", "5"], "coords"),
    (["risk", "point-masses", "--classifier", "radial:0.5", "--threat", "linf:0.4"], "estimate_risk"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_help_describe_and_console_entry_point(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["risk", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--classifier" in out and "--definition" in out
    assert main(["describe", "tsipras"]) == 0 and "bayes rule" in capsys.readouterr().out
    run = subprocess.run([sys.executable, "-m", "toyrobust.cli", "risk", "tsipras", "--threat", "linf:x:y"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr and run.stderr.count("\n") == 1
