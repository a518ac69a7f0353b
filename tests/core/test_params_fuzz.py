"""Property-based tests: any edit of a valid params.yaml (wrong types, out-of-range numbers, unknown or
missing keys, inconsistent combinations, a truncated file) is either accepted or rejected with exactly
one line and exit 2, never a traceback: from `lth-diffusion check` and from a stage entry."""
import copy
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.app.cli import app
from pipeline.app.params import parse_params

from conftest import TINY

ROOT = Path(__file__).resolve().parents[2]
VALID = parse_params(TINY).model_dump(mode="json")  # every key spelled out, as DVC needs it
LEAVES = [(section, key) for section, body in VALID.items() for key in body]
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(-5, 600), max_size=4), st.lists(st.text(max_size=4), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@st.composite
def edited(draw):
    """A params mapping with one random edit; the second item says whether it must be rejected."""
    raw = copy.deepcopy(VALID)
    section, key = draw(st.sampled_from(LEAVES))
    kind = draw(st.sampled_from(["value", "unknown", "missing", "missing_section", "wrong_type", "section_type",
                                 "combo"]))
    if kind == "value":
        raw[section][key] = draw(junk)
        return raw, False
    if kind == "unknown":
        raw[section]["zz_" + draw(st.text(min_size=1, max_size=8))] = draw(junk)
        return raw, True
    if kind == "missing":
        del raw[section][key]  # the default fills in: fine or one line
        return raw, False
    if kind == "missing_section":
        del raw[section]
        return raw, False
    if kind == "wrong_type":
        current = raw[section][key]
        if isinstance(current, bool) or current is None:
            raw[section][key] = [draw(st.text(max_size=3))]
        elif isinstance(current, (int, float)):
            raw[section][key] = draw(st.text(alphabet="abcxyz ", min_size=1, max_size=6))
        else:
            raw[section][key] = {"nested": draw(st.integers())}
        return raw, True
    if kind == "section_type":
        raw[section] = draw(st.one_of(st.integers(), st.text(min_size=1, max_size=5),
                                      st.lists(st.integers(), min_size=1)))
        return raw, True
    return _combo(draw, raw), True


def _combo(draw, raw):
    """Each field valid on its own, the combination not."""
    rule = draw(st.integers(0, 10))
    T = raw["diffusion"]["timesteps"]
    if rule == 0:
        raw["imp"]["seeds"] = [draw(st.integers(0, 99))]
        raw["eval"]["seeds"] = raw["imp"]["seeds"]
    elif rule == 1:
        raw["model"]["attn_resolutions"] = [draw(st.sampled_from([1, 2, 3, 5, 6, 7, 16, 32]))]
    elif rule == 2:
        raw["eval"]["sampling_steps"] = T + draw(st.integers(1, 10**6))
    elif rule == 3:
        raw["controls"] = {"kinds": ["reinit"], "rounds": [len(raw["imp"]["rounds"]) + draw(st.integers(1, 99))]}
    elif rule == 4:
        raw["sparsity"]["exclude"] = draw(st.sampled_from([["*"], ["*.weight"], ["*conv*", "*"]]))
    elif rule == 5:
        raw["similarity"]["max_layer_rate"] = draw(st.floats(0.01, raw["sparsity"]["rate"] * 0.9))
    elif rule == 6:
        raw["eval"]["seeds"] = [draw(st.integers(3, 10**6))]
    elif rule == 7:
        raw["eval"]["kid_subset_size"] = raw["eval"]["num_samples"] + draw(st.integers(1, 1000))
    elif rule == 8:
        raw["rewind"]["step"] = raw["train"]["steps"] + draw(st.integers(0, 1000))
    elif rule == 9:
        k = draw(st.integers(2, 5))
        raw["imp"]["rounds"] = [{"k": 1, "prev": 0}, {"k": k, "prev": draw(st.integers(0, 5))}]
        if k == 2 and raw["imp"]["rounds"][1]["prev"] == 1:
            raw["imp"]["rounds"][1]["k"] = 3
    else:
        raw["data"]["image_size"] = 2 * draw(st.integers(2, 100)) + 1  # odd: two levels need even
    return raw


def assert_one_line_or_ok(exit_code: int, stderr: str, must_fail: bool, what) -> None:
    assert "Traceback" not in stderr, stderr
    if exit_code == 0:
        assert not must_fail, f"accepted: {what}"
        return
    assert exit_code == 2, (exit_code, stderr, what)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (stderr, what)


@pytest.fixture(scope="module")
def params_file():
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp) / "params.yaml"


@FUZZ
@given(case=edited())
def test_check_accepts_or_rejects_with_one_line(params_file, case):
    raw, must_fail = case
    params_file.write_text(yaml.safe_dump(raw, allow_unicode=True))
    result = CliRunner().invoke(app, ["check", str(params_file)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert_one_line_or_ok(result.exit_code, result.stderr, must_fail, raw)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(cut=st.integers(0, len(yaml.safe_dump(VALID))), noise=st.sampled_from(["", ":", "\t", "- [", "{", "\x00", "é"]))
def test_truncated_or_garbled_file_gives_one_line(params_file, cut, noise):
    params_file.write_text(yaml.safe_dump(VALID)[:cut] + noise)
    result = CliRunner().invoke(app, ["check", str(params_file)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert_one_line_or_ok(result.exit_code, result.stderr, False, (cut, noise))


def test_binary_params_file_gives_one_line(params_file):
    params_file.write_bytes(b"\xff\xfe\x00garbage")
    result = CliRunner().invoke(app, ["check", str(params_file)])
    assert_one_line_or_ok(result.exit_code, result.stderr, True, "binary")


@FUZZ
@given(case=edited())
def test_stage_entry_rejects_in_process_with_one_line(case, capsys, monkeypatch):
    """The loader every stage runs first (run_stage), with compute replaced by what a pruning stage
    does first: the shape rules. Every bad case stops there with one line."""
    from pipeline.app.stage import run_stage
    from pipeline.sparsity.rules import check_prunable

    raw, must_fail = case
    ran = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "params.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
        monkeypatch.chdir(tmp)
        monkeypatch.setattr(sys, "argv", ["stages.init"])

        def run_prune(params):
            check_prunable(params)
            ran.append(params)

        with pytest.raises(SystemExit) if must_fail else _maybe_exit() as exit_info:
            run_stage(run_prune)
    code = 0 if ran else exit_info.value.code
    assert_one_line_or_ok(code, capsys.readouterr().err, must_fail, raw)
    assert not (ran and must_fail)


class _maybe_exit:
    """Context that swallows SystemExit and keeps it as `.value`, like pytest.raises but optional."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        self.value = value
        return kind is SystemExit


@settings(max_examples=2, deadline=None, derandomize=True)
@given(case=edited().filter(lambda c: c[1]))
def test_stage_process_rejects_with_one_line_and_writes_nothing(case):
    raw, _ = case
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "params.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
        # layer_rates: the core rules and the shape rules both run before it reads any artifact
        proc = subprocess.run([sys.executable, "-m", "stages.layer_rates"], cwd=tmp, capture_output=True, text=True,
                              env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                   "OMP_NUM_THREADS": "1"}, timeout=120)
        assert_one_line_or_ok(proc.returncode, proc.stderr, True, raw)
        assert "params.yaml" in proc.stderr, "rejected for its params, not for a missing artifact"
        assert not (Path(tmp) / "artifacts").exists()
