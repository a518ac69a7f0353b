"""Every params key a stage's code reads is declared for that stage in dvc.yaml, so changing it
invalidates the stage. Each stage's function runs on a tiny study while every read of a params
field is recorded."""
import functools
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from conftest import TINY, merge
from pipeline.data import sources as data
from pipeline.app.params import parse_params
from pipeline.core.config import Params, Section

ROOT = Path(__file__).resolve().parents[2]


def declared_params() -> dict[str, set[str]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)  # foreach stages keep their definition under `do`
        out[name] = {entry for entry in body.get("params", []) if isinstance(entry, str)}
    return out


def covered(key: str, declared: set[str]) -> bool:
    return any(key == d or key.startswith(d + ".") for d in declared)


class ReadRecorder:
    """Records `section.field` for every field read from the given Params objects' sections."""

    def __init__(self, *all_params: Params):
        self.paths: dict[int, str] = {}
        self.reads: set[str] = set()
        self.on = False
        for params in all_params:
            for name in Params.model_fields:
                section = object.__getattribute__(params, name)
                self.paths[id(section)] = name
                for field in type(section).model_fields:
                    value = object.__getattribute__(section, field)
                    for item in value if isinstance(value, tuple) else ():
                        if isinstance(item, Section):  # e.g. imp.rounds' {k, prev} items
                            self.paths[id(item)] = f"{name}.{field}"

    def install(self, monkeypatch) -> None:
        recorder = self
        get, dump = Section.__getattribute__, Section.model_dump

        def getattribute(obj, name):
            if recorder.on and name in type(obj).model_fields and id(obj) in recorder.paths:
                recorder.reads.add(f"{recorder.paths[id(obj)]}.{name}")
            return get(obj, name)

        def model_dump(obj, *args, **kwargs):  # a dumped section (e.g. a fingerprint) reads every field
            if recorder.on and id(obj) in recorder.paths:
                recorder.reads.update(f"{recorder.paths[id(obj)]}.{f}" for f in type(obj).model_fields)
            return dump(obj, *args, **kwargs)

        monkeypatch.setattr(Section, "__getattribute__", getattribute)
        monkeypatch.setattr(Section, "model_dump", model_dump)

    def run(self, fn, params, *args) -> set[str]:
        self.reads, self.on = set(), True
        try:
            fn(params, *args)
        finally:
            self.on = False
        return self.reads


@pytest.mark.slow
def test_every_param_a_stage_reads_is_declared_for_it(tmp_path, monkeypatch):
    from stages.control import run_control
    from stages.report import run_report
    from stages.dense import run_dense
    from stages.init import run_init
    from stages.prepare import run_prepare
    from stages.prune import run_prune
    from stages.retrain import run_retrain
    from stages.rewind import run_rewind
    from stages.eval import run_eval
    from stages.eval_control import run_eval_control
    from stages.features import run_features
    from stages.reference import run_reference
    from stages.layer_rates import run_layer_rates
    from stages.similarity import run_similarity
    from stages.dense_budget import run_dense_budget
    from stages.retrain_budget import run_retrain_budget
    from stages.eval_budget import run_eval_budget

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "_mnist5k", functools.cache(data._mnist5k))
    raw = merge(TINY, {"imp": {"rounds": [{"k": 1, "prev": 0}]}, "controls": {"rounds": [1]}})
    params = parse_params(raw)
    variants = {  # reads that only happen under another schedule or rewind mode
        "layerwise": parse_params(merge(raw, {"sparsity": {"schedule": "layerwise"}})),
        "init": parse_params(merge(raw, {"rewind": {"mode": "init"}})),
        "reinit": parse_params(merge(raw, {"rewind": {"mode": "reinit"}})),
    }
    budget = parse_params(merge(raw, {"budget": {"seeds": [1, 2], "round": 1}}))
    budget_init = parse_params(merge(raw, {"budget": {"seeds": [1, 2], "round": 1}, "rewind": {"mode": "init"}}))
    # the budget stages read the longer recipe through at_budget(): record its train section too
    at_budget = Params.at_budget
    longer = {id(p): at_budget(p) for p in (budget, budget_init)}
    monkeypatch.setattr(Params, "at_budget", lambda self: (at_budget(self), longer[id(self)])[1])
    recorder = ReadRecorder(params, *variants.values(), budget, budget_init, *longer.values())
    recorder.install(monkeypatch)
    reads: dict[str, set[str]] = defaultdict(set)

    def run(stage, fn, *args, p=params):
        reads[stage] |= recorder.run(fn, p, *args)

    run("prepare", run_prepare)
    run("init", run_init)
    for seed in params.imp.seeds:
        run("dense", run_dense, seed)
    run("layer_rates", run_layer_rates)
    run("prune", run_prune, 1, 1, p=variants["layerwise"])
    for seed in params.imp.seeds:
        run("prune", run_prune, seed, 1)
    run("rewind", run_rewind, 1, 1, p=variants["init"])
    run("rewind", run_rewind, 1, 1, p=variants["reinit"])
    for seed in params.imp.seeds:
        run("rewind", run_rewind, seed, 1)
        run("retrain", run_retrain, seed, 1)
        for kind in params.controls.kinds:
            run("control", run_control, kind, seed, 1)
    run("features", run_features)
    run("reference", run_reference)
    for seed in params.imp.seeds:
        run("eval_dense", run_eval, seed, 0)
        run("eval", run_eval, seed, 1)
    for seed in params.imp.seeds:
        for kind in params.controls.kinds:
            run("eval_control", run_eval_control, kind, seed, 1)
    run("similarity", run_similarity)
    run("dense_budget", run_dense_budget, 1, p=budget)
    run("retrain_budget", run_retrain_budget, 1, p=budget)
    run("retrain_budget", run_retrain_budget, 1, p=budget_init)
    run("eval_budget", run_eval_budget, 1, p=budget)
    run("report", run_report)

    declared = declared_params()
    assert set(reads) == set(declared), f"stages not exercised here: {set(declared) ^ set(reads)}"
    undeclared = {stage: sorted(k for k in keys if not covered(k, declared[stage])) for stage, keys in reads.items()}
    undeclared = {stage: keys for stage, keys in undeclared.items() if keys}
    assert not undeclared, f"params read but not declared in dvc.yaml: {undeclared}"
    assert "features.steps" in reads["features"] and "imp.rounds" not in str(reads["eval"]), "the recorder works"
