"""The README: short, its two commands first, its results generated from the committed reports, its
links alive (docs/ too)."""
import re
import shutil
from pathlib import Path

from typer.testing import CliRunner

from pipeline.app.cli import app

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("README.md", "params.yaml", "reports/metrics.json", "reports/replicates/metrics.json",
           "reports/compare/compare_findings.json", "bench/results/parallel_study.json",
           "bench/results/default_study.json", "reports/cifar10-cpu/metrics.json", "params/cifar10-cpu.yaml",
           "bench/results/cifar10_cpu.json")


def test_readme_is_short_and_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert len(block) == 2
    assert block[0].endswith("lth-diffusion repro -j auto") and "pip install torch==2.14.1" in block[0]
    assert block[1] == ". .venv/bin/activate && pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert ". .venv/bin/activate && pytest" in ci, "CI runs the README's test command"


def test_results_block_matches_the_committed_reports():
    result = CliRunner().invoke(app, ["readme", "--root", str(ROOT)])
    assert result.exit_code == 0, result.output


def test_a_changed_number_fails_the_check(tmp_path):
    for name in SOURCES:
        if not (ROOT / name).exists():
            continue
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    assert CliRunner().invoke(app, ["readme", "--root", str(tmp_path)]).exit_code == 0
    readme = tmp_path / "README.md"
    text = readme.read_text()
    broken = text.replace("2,720 s", "2,721 s")
    assert broken != text
    readme.write_text(broken)
    result = CliRunner().invoke(app, ["readme", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "disagrees" in result.output
    readme.write_text(text)
    params = tmp_path / "params.yaml"
    params.write_text(params.read_text().replace("seeds: [1, 2, 3]", "seeds: [1, 2, 3, 4]"))
    assert CliRunner().invoke(app, ["readme", "--root", str(tmp_path)]).exit_code == 1, "params are quoted too"


def test_every_relative_link_exists():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{doc.name} links to {target}, which does not exist"


def test_check_names_missing_dataset_files_and_counts_stages(tmp_path):
    import yaml

    from conftest import TINY, merge

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(merge(TINY, {"data": {"dataset": "cifar10", "channels": 3,
                                                           "root": str(tmp_path / "nothing")}})))
    result = CliRunner().invoke(app, ["check", str(params)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds no CIFAR10 files" in lines[0] and "data.download: true" in lines[0]
    params.write_text(yaml.safe_dump(TINY))
    ok = CliRunner().invoke(app, ["check", str(params)])
    assert ok.exit_code == 0 and "ok (27 DVC stages)" in ok.stdout, ok.stdout  # 7 + 2·2 + 4·2·2


def test_yaml_errors_keep_their_line_and_column(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("data:\n  dataset: mnist5k\n  image_size: [12\n")
    result = CliRunner().invoke(app, ["check", str(params)])
    assert result.exit_code == 2 and "not valid YAML at line " in result.stderr and "column" in result.stderr


def test_check_estimates_the_run_time_and_it_scales(tmp_path):
    """The estimate grows with the training steps and the model, and matches the measured default study."""
    import yaml

    from conftest import TINY, merge
    from pipeline.app import estimate as E
    from pipeline.app.params import parse_params
    from pipeline.app.cli import stage_count

    def serial(**over):
        p = parse_params(merge(TINY, over))
        return E.estimate(p, stage_count(p), E.REF_MACS, cores=2).serial_s

    base = serial()
    assert serial(train={"steps": 12})[0] > base[0] and serial(train={"steps": 12})[1] > base[1]
    bigger = parse_params(TINY)
    assert E.estimate(bigger, stage_count(bigger), 4 * E.REF_MACS, cores=2).serial_s[0] > base[0]
    assert serial(imp={"seeds": [1, 2, 3]})[0] > base[0]

    # the study bench/results/parallel_study.json timed: 96 stages, dvc repro 2,720 s, parallel 1,695 s
    measured = parse_params({"imp": {"seeds": [1, 2, 3], "rounds": [{"k": k, "prev": k - 1} for k in range(1, 6)]},
                             "controls": {"rounds": [3, 5]}, "train": {"steps": 1200}, "rewind": {"step": 120},
                             "budget": {"seeds": []}})
    e = E.estimate(measured, stage_count(measured), E.REF_MACS, cores=2)
    assert stage_count(measured) == 97  # the 96 it timed and the prepare stage, added since
    assert e.serial_s[0] <= 2720 * 1.1 and e.serial_s[1] >= 2720 * 0.9
    assert e.parallel_s[0] <= 1695 * 1.15 and e.parallel_s[1] >= 1695 * 0.85

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY))
    ok = CliRunner().invoke(app, ["check", str(params)])
    assert ok.exit_code == 0 and "  time  " in ok.stdout and "with `dvc repro`" in ok.stdout, ok.stdout
    params.write_text(yaml.safe_dump(merge(TINY, {"train": {"steps": 6000}})))
    longer = CliRunner().invoke(app, ["check", str(params)])
    # 2 seeds x 6 dense steps + (2 seeds x 2 rounds) retrains of 6 - rewind.step 2 steps
    assert "28 training steps" in ok.stdout and "35,992 training steps" in longer.stdout, longer.stdout
