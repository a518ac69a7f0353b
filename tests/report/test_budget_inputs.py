"""The report's reading of the budget check: per seed, the dense and ticket FIDs of the chain (budget T)
and of the budget stages (factor x T), with stale or missing files left out and named."""
import json

from pipeline.core import paths
from pipeline.report.budget_inputs import budget_check, load_budget
from pipeline.stats.budget import NOT_MEASURED, STABLE
from pipeline.stats.verdicts import SUPPORTED


def write(path, fid, sparsity=0.0, **extra):
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps({"seed": 1, "round": 0, "fid": fid, "sparsity": sparsity, **extra}))


def study(tmp_path, params, ratio_2T=1.0, seeds=(1, 2)):
    k, long = params.budget.round, params.budget.factor * params.train.steps
    for i, seed in enumerate(seeds):
        dense = 20.0 + i
        write(paths.eval_dir(seed, 0, tmp_path), dense)
        write(paths.eval_dir(seed, k, tmp_path), dense * (1.0 + 0.01 * i), sparsity=0.75)
        write(paths.budget_eval_dir(seed, 0, tmp_path), dense - 2, train_steps=long)
        write(paths.budget_eval_dir(seed, k, tmp_path), (dense - 2) * ratio_2T * (1.0 + 0.01 * i), sparsity=0.75,
              train_steps=long)


def test_off_reads_nothing(tiny, tmp_path):
    assert load_budget(tiny(), tmp_path) is None and budget_check(tiny(), tmp_path) is None


def test_reads_both_budgets_per_seed(tiny, tmp_path):
    params = tiny(budget={"seeds": [1, 2], "round": 2})
    study(tmp_path, params)
    data = load_budget(params, tmp_path)
    assert (data["round"], data["steps_T"], data["steps_2T"], data["missing"]) == (2, 6, 12, [])
    assert data["T"] == {1: {"dense": 20.0, "ticket": 20.0}, 2: {"dense": 21.0, "ticket": 21.0 * 1.01}}
    assert data["2T"][2] == {"dense": 19.0, "ticket": 19.0 * 1.01}
    assert data["sparsity"]["2T"] == {1: 0.75, 2: 0.75}
    ev = budget_check(params, tmp_path, primary_round=2)
    assert (ev["verdict_T"], ev["verdict_2T"], ev["status"], ev["round_is_primary"]) == (SUPPORTED, SUPPORTED, STABLE, True)


def test_a_stale_or_missing_2T_file_is_not_measured(tiny, tmp_path):
    params = tiny(budget={"seeds": [1, 2], "round": 2})
    study(tmp_path, params)
    # seed 2's 2T dense was evaluated at another budget (a stale file); seed 1's ticket at 2T is missing
    write(paths.budget_eval_dir(2, 0, tmp_path), 19.0, train_steps=18)
    (paths.budget_eval_dir(1, 2, tmp_path) / "metrics.json").unlink()
    data = load_budget(params, tmp_path)
    assert data["2T"] == {} and set(data["T"]) == {1, 2}
    assert sorted(data["missing"]) == sorted([str(paths.budget_eval_dir(2, 0, tmp_path) / "metrics.json"),
                                              str(paths.budget_eval_dir(1, 2, tmp_path) / "metrics.json")])
    ev = budget_check(params, tmp_path)
    assert ev["verdict_2T"] == NOT_MEASURED and ev["stable"] is None and ev["verdict_T"] == SUPPORTED
