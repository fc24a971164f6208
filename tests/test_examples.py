"""The runnable examples: each runs as a subprocess (``--quick`` sizes), exits 0 and writes its
outputs.  The full-size quickstart (the README's main command) is marked slow."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HAS_MPL = importlib.util.find_spec("matplotlib") is not None
HAS_UPROOT = importlib.util.find_spec("uproot") is not None


def run(script, out, *args, block=(), timeout=600):
    """Run examples/<script> with --out; ``block`` names modules made unimportable."""
    argv = [str(EXAMPLES / script), "--out", str(out), *args]
    env = dict(os.environ, MPLBACKEND="Agg")
    if block:
        code = ("import runpy, sys\n"
                f"for m in {list(block)!r}: sys.modules[m] = None\n"
                f"sys.argv = {argv!r}\n"
                f"runpy.run_path(sys.argv[0], run_name='__main__')\n")
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=out)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def assert_pngs(out, names):
    for name in names:
        path = out / name
        assert path.exists(), f"{name} was not written"
        assert path.stat().st_size > 5000, f"{name} is suspiciously small"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


QUICKSTART_PNGS = ["coefficients.png", "loss.png", "systematics.png", "scan_c_energy.png",
                   "scan_c_angle.png", "contour.png"]


def check_quickstart(out, stdout):
    for header in ("1. Training data", "2a. BoostedInformationTree", "2b. BoostedParametricTree",
                   "2c. Fraction classifier", "3. Save the models", "4. The unbinned model",
                   "5. Fit the Asimov dataset", "5. Fit the toy dataset", "6. Profile-likelihood",
                   "Done in"):
        assert header in stdout, header
    assert "predictions identical to the trained models: True" in stdout
    assert "68% CL interval" in stdout and "95% CL interval" in stdout
    models = out / "models"
    for name in ("bit_signal.bpt", "bpt_signal.bpt", "bpt_background.bpt"):
        assert (models / name).stat().st_size > 0
    assert (models / "fractions.skops").exists() or (models / "fractions.joblib").exists()
    assert (models / "analysis.bpt").stat().st_size > 0
    assert "reloaded with bpt.inference.load_model: q identical = True" in stdout
    if HAS_MPL:
        assert_pngs(out, QUICKSTART_PNGS)


def test_quickstart_quick(tmp_path):
    # as after the README's `pip install -e ".[plot]"`: no skops, so the classifier is saved
    # with joblib and the whole model with allow_pickle=True (the skops path runs in the
    # slow full-size test whenever skops is installed)
    out = run("quickstart.py", tmp_path, "--quick", block=["skops", "skops.io"])
    check_quickstart(tmp_path, out)
    assert (tmp_path / "models" / "fractions.joblib").exists()
    assert "skops is not installed" in out


@pytest.mark.slow
def test_quickstart_full(tmp_path):
    out = run("quickstart.py", tmp_path)
    check_quickstart(tmp_path, out)
    # full size: the Asimov fit (exact-model data) lies within 68% of the truth for both POIs
    lines = out[out.index("5. Fit the Asimov"):out.index("5. Fit the toy")].splitlines()
    rows = [ln for ln in lines if ln.strip().startswith(("c_energy", "c_angle"))]
    assert len(rows) == 2 and all(ln.rstrip().endswith("yes / yes") for ln in rows), rows


def test_score_single_parameter(tmp_path):
    out = run("score_single_parameter.py", tmp_path, "--quick")
    assert "share of the Fisher information captured" in out
    if HAS_MPL:
        assert_pngs(tmp_path, ["score.png"])


def test_example_without_matplotlib_skips_plots(tmp_path):
    out = run("score_single_parameter.py", tmp_path, "--quick", block=["matplotlib"])
    assert "matplotlib is not installed: plot skipped" in out
    assert not (tmp_path / "score.png").exists()


def test_systematics(tmp_path):
    out = run("systematics.py", tmp_path, "--quick")
    assert "Histogram closure at jes = 1.5" in out
    if HAS_MPL:
        assert_pngs(tmp_path, ["systematics.png"])


def test_profiled_fit_2poi(tmp_path):
    out = run("profiled_fit_2poi.py", tmp_path, "--quick")
    assert "learned model: fit and intervals" in out and "exact model: fit and intervals" in out
    if HAS_MPL:
        assert_pngs(tmp_path, ["contour_2poi.png"])


def test_root_input(tmp_path):
    out = run("root_input.py", tmp_path, "--quick")
    if HAS_UPROOT:
        assert (tmp_path / "toy_eft.root").stat().st_size > 0
        assert (tmp_path / "bit_from_root.bpt").stat().st_size > 0
        assert "read back 6000 events" in out
    else:
        assert "uproot is not installed" in out


def test_root_input_without_uproot_skips(tmp_path):
    out = run("root_input.py", tmp_path, "--quick", block=["uproot"])
    assert "uproot is not installed" in out and "skipped" in out
    assert not (tmp_path / "toy_eft.root").exists()


# ------------------------------------------------------------------ docs/api.md
def _signature(f):
    import inspect
    s = str(inspect.signature(f))
    return s.replace("(self, ", "(").replace("(self)", "()")


def test_api_reference_signatures():
    """docs/api.md names every public name and quotes every signature exactly as the code
    has it (a changed signature must be documented)."""
    import inspect

    import bpt
    import bpt.datasets
    import bpt.diagnostics
    import bpt.export
    import bpt.inference
    import bpt.plotting
    import bpt.precompile
    import bpt.toys

    text = (EXAMPLES.parent / "docs" / "api.md").read_text(encoding="utf-8")
    missing = []
    with_methods = {"BoostedInformationTree", "BoostedParametricTree", "ToyPhysics",
                    "AdditiveModel", "BinnedChannel", "Combination"}
    for mod in (bpt, bpt.datasets, bpt.toys, bpt.diagnostics, bpt.plotting, bpt.inference,
                bpt.export, bpt.precompile):
        for name in mod.__all__:
            obj = getattr(mod, name)
            full = f"{mod.__name__}.{name}"
            is_dataclass = hasattr(obj, "__dataclass_fields__")
            if inspect.isclass(obj) and (is_dataclass or issubclass(obj, Exception)
                                         or name in ("Dataset", "BinnedData", "CombinedData")):
                expected = [full] + [f"`{f}`" for f in getattr(obj, "__dataclass_fields__", ())]
            elif callable(obj):
                expected = [full + _signature(obj)]
            else:
                expected = [name]
            if name in with_methods:
                for m, f in inspect.getmembers(obj):
                    if m.startswith("_"):
                        continue
                    if isinstance(inspect.getattr_static(obj, m), property):
                        expected.append(f"{m}")
                    elif callable(f) and getattr(f, "__module__", "").startswith("bpt"):
                        expected.append(f"{name}.{m}{_signature(f)}")
            missing += [e for e in expected if e not in text]
    assert not missing, f"docs/api.md lacks: {missing}"
