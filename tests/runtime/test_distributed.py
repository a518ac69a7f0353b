"""Data parallel on the CPU: 2 gloo ranks under torchrun take the same code path as 2 GPUs."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import ddp_worker
from pipeline.core import paths
from pipeline.sparsity import tickets
from pipeline.runtime import distributed
from pipeline.runtime.compiling import CompiledOrEager, compile_wanted
from pipeline.ddpm.diffusion import sample_images
from pipeline.core.io import load_torch
from stages.dense import run_dense
from stages.init import run_init
from stages.prepare import run_prepare

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTH_")}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]), OMP_NUM_THREADS="1", TQDM_DISABLE="1", **extra)
    return env


def assert_same_training(got_state: dict, want_state: dict, lr: float, steps: int) -> None:
    """Weights equal to float tolerance. Attention key biases have an analytically zero gradient
    (softmax ignores a shift), so Adam turns float noise into steps of up to lr: bounded, not equal."""
    for name, want in want_state.items():
        got, want = got_state[name].clone(), want.clone()
        if name.endswith("qkv.bias"):
            keys = slice(len(want) // 3, 2 * len(want) // 3)  # q, k, v stacked on channels
            assert (got[keys] - want[keys]).abs().max() <= lr * steps, name
            got[keys] = want[keys]
        # Adam divides by sqrt(v): in its first steps a near-zero gradient's summation-order noise
        # moves a weight by a visible fraction of lr, so the bound is lr / 10 (a wrong slice, a
        # missing all-reduce or an unmasked rank moves weights by whole lr steps)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=lr / 10, msg=name)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """What each of 2 ranks saw, and a single-process run of the same global batch."""
    out = tmp_path_factory.mktemp("ddp")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(ROOT / "tests" / "runtime" / "ddp_worker.py"), str(out)],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    params, start, mask, diffusion, data = ddp_worker.setup()
    single, digests = ddp_worker.run(params, start, mask, diffusion, data)
    images = sample_images(diffusion, single.ema, progress=False, **ddp_worker.SAMPLES)
    return ranks, {"result": single, "digests": digests, "images": images, "mask": mask}


def test_ranks_hold_identical_weights_after_every_step(two_ranks):
    ranks, _ = two_ranks
    assert [r["world"] for r in ranks] == [2, 2]
    assert len(ranks[0]["digests"]) == ddp_worker.STEPS
    assert ranks[0]["digests"] == ranks[1]["digests"]
    assert len(set(ranks[0]["digests"])) == ddp_worker.STEPS, "the weights change every step"


def test_two_ranks_match_one_process_with_the_same_global_batch(two_ranks):
    ranks, single = two_ranks
    ref = single["result"]
    assert len(ranks[0]["loss"]) == len(ref.history) == ddp_worker.STEPS
    lr = ddp_worker.setup()[0].train.lr
    for rank in ranks:
        assert rank["loss"] == pytest.approx([h["loss"] for h in ref.history], rel=1e-5)
        assert_same_training(rank["model"], ref.model.state_dict(), lr, ddp_worker.STEPS)


def test_two_ranks_match_one_process_at_dropout(two_ranks):
    """Dropout masks are drawn for the whole global batch and sliced like the noise: 2 ranks at the
    GPU presets' dropout 0.1 train what 1 process trains (ranks reseeding alike used to share masks)."""
    ranks, single = two_ranks
    params, start, mask, diffusion, data = ddp_worker.setup(dropout=ddp_worker.DROPOUT)
    ref, _ = ddp_worker.run(params, start, mask, diffusion, data)
    without = single["result"]
    assert [h["loss"] for h in ref.history] != pytest.approx([h["loss"] for h in without.history], rel=1e-3), \
        "dropout changes the run, so the check bites"
    for rank in ranks:
        assert rank["dropout_loss"] == pytest.approx([h["loss"] for h in ref.history], rel=1e-5)
        assert_same_training(rank["dropout_model"], ref.model.state_dict(), params.train.lr, ddp_worker.STEPS)


def test_rank0_fetches_first_while_the_others_wait(two_ranks):
    ranks, _ = two_ranks
    # rank 0 may download and finished before rank 1 (same machine) looked, without downloading
    assert [r["in_turn"] for r in ranks] == [(True, True), (False, True)]


def test_pruned_weights_stay_zero_on_every_rank(two_ranks):
    ranks, single = two_ranks
    mask = single["mask"]
    for rank in ranks:
        for state in (rank["model"], rank["ema"]):
            for name in mask:
                assert torch.count_nonzero(state[name][~mask[name]]) == 0, name


def test_resume_under_ddp_equals_the_uninterrupted_run_and_only_rank0_writes(two_ranks):
    ranks, _ = two_ranks
    for rank in ranks:
        assert rank["resumed_from"] == 2
        assert rank["resumed_loss"] == rank["loss"]
        for name, tensor in rank["model"].items():
            assert torch.equal(rank["resumed_model"][name], tensor), name
    assert ranks[0]["checkpoint_writes"] and ranks[1]["checkpoint_writes"] == []


def test_sampled_images_do_not_depend_on_the_rank_count(two_ranks):
    ranks, single = two_ranks
    assert single["images"].shape == (ddp_worker.SAMPLES["n"], *ddp_worker.SAMPLES["shape"])
    for rank in ranks:  # gathered in sample order on every rank
        torch.testing.assert_close(rank["images"], single["images"], rtol=0, atol=1e-5)


def test_sample_noise_depends_only_on_seed_and_index():
    params, start, mask, diffusion, data = ddp_worker.setup()
    model = tickets.new_model(params).eval()
    whole = sample_images(diffusion, model, 5, (1, 8, 8), steps=2, batch_size=5, seed=9, progress=False)
    batched = sample_images(diffusion, model, 5, (1, 8, 8), steps=2, batch_size=2, seed=9, progress=False)
    torch.testing.assert_close(whole, batched, rtol=0, atol=1e-5)
    first = sample_images(diffusion, model, 3, (1, 8, 8), steps=2, batch_size=2, seed=9, progress=False)
    torch.testing.assert_close(first, whole[:3], rtol=0, atol=1e-5)


def test_dense_stage_relaunches_itself_on_the_ranks_the_environment_asks_for(tiny_raw, tmp_path, monkeypatch):
    """LTH_NPROC_PER_NODE=2: `python -m stages.dense` re-executes under torchrun; the outputs match
    a single-process stage, and rank 0 alone wrote them."""
    from pipeline.app.params import parse_params

    params = parse_params(tiny_raw)
    runs = {}
    for name, nproc in (("one", None), ("two", "2")):
        work = tmp_path / name
        work.mkdir()
        monkeypatch.chdir(work)
        (work / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
        run_init(params)
        run_prepare(params)
        if nproc is None:
            run_dense(params, 1)
        else:
            proc = subprocess.run([sys.executable, "-m", "stages.dense", "1"], cwd=work, env=_env(LTH_NPROC_PER_NODE=nproc),
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        out = paths.train_dir(1, 0)
        runs[name] = (load_torch(out / "model.pt"), pd.read_csv(out / "loss.csv"), out)
    (one, loss1, _), (two, loss2, out2) = runs["one"], runs["two"]
    assert loss2["loss"].tolist() == pytest.approx(loss1["loss"].tolist(), rel=1e-5)
    assert_same_training(two["model"], one["model"], params.train.lr, params.train.steps)
    assert sorted(p.name for p in out2.iterdir()) == ["ema_checks.pt", "loss.csv", "model.pt", "rewind.pt"]


def test_torchrun_command_follows_the_environment():
    assert distributed.torchrun_command("stages.dense", ["1"], {}) is None
    assert distributed.torchrun_command("stages.dense", ["1"], {"LTH_NPROC_PER_NODE": "1"}) is None
    cmd = distributed.torchrun_command("stages.retrain", ["1", "2"], {"LTH_NPROC_PER_NODE": "8"})
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=8" in cmd and "--standalone" in cmd
    assert cmd[-3:] == ["stages.retrain", "1", "2"]
    # already a rank: never relaunch again
    assert distributed.torchrun_command("stages.dense", ["1"], {"LTH_NPROC_PER_NODE": "8", "RANK": "0",
                                                                 "WORLD_SIZE": "8", "LOCAL_RANK": "0"}) is None
    multi = distributed.torchrun_command("stages.dense", ["1"], {"LTH_NPROC_PER_NODE": "4", "LTH_NNODES": "2",
                                                                  "LTH_RDZV_ENDPOINT": "head:29500"})
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=head:29500"} <= set(multi)
    assert "--standalone" not in multi
    same = distributed.torchrun_command("stages.dense", ["1"], {"LTH_NPROC_PER_NODE": "4", "LTH_NNODES": "2",
                                                                 "LTH_RDZV_ENDPOINT": "head:29500"})
    assert multi == same, "every node derives the same rendezvous id"
    with pytest.raises(distributed.LaunchError, match="LTH_RDZV_ENDPOINT"):
        distributed.torchrun_command("stages.dense", ["1"], {"LTH_NPROC_PER_NODE": "4", "LTH_NNODES": "2"})
    with pytest.raises(distributed.LaunchError, match="LTH_NPROC_PER_NODE"):
        distributed.requested_ranks({"LTH_NPROC_PER_NODE": "many"})


def test_bad_rank_request_is_one_line_exit_2(tiny_raw, tmp_path):
    from pipeline.app.params import parse_params

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(parse_params(tiny_raw).model_dump(mode="json")))
    proc = subprocess.run([sys.executable, "-m", "stages.dense", "1"], cwd=tmp_path,
                          env=_env(LTH_NPROC_PER_NODE="0"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: LTH_NPROC_PER_NODE and LTH_NNODES must be >= 1 (got 0, 1)"]


def test_shards_cover_every_item_once():
    for n in (0, 1, 7, 16):
        for world in (1, 2, 3, 8):
            spans = [distributed.shard(n, r, world) for r in range(world)]
            assert [i for lo, hi in spans for i in range(lo, hi)] == list(range(n))
            assert max(hi - lo for lo, hi in spans) - min(hi - lo for lo, hi in spans) <= 1


def test_compile_choice_and_fallback_to_eager():
    assert compile_wanted(torch.device("cuda"), "auto", work=10**7, worth=500_000)
    assert not compile_wanted(torch.device("cuda"), "auto", work=1_000, worth=500_000), "not worth the compile"
    assert not compile_wanted(torch.device("cpu"), "auto", work=10**7, worth=500_000)
    assert compile_wanted(torch.device("cpu"), "1") and not compile_wanted(torch.device("cuda"), "0")
    with pytest.raises(ValueError, match="LTH_COMPILE"):
        compile_wanted(torch.device("cpu"), "sometimes")

    class CompilerCrash(RuntimeError):
        pass
    CompilerCrash.__module__ = "torch._dynamo.exc"

    def broken(x):
        raise CompilerCrash("backend failed")
    eager = torch.nn.Linear(2, 2)
    runner = CompiledOrEager(eager, broken, "test")
    x = torch.ones(1, 2)
    assert torch.equal(runner.run(lambda m: m(x)), eager(x)) and not runner.is_compiled
    # errors of the model itself are not swallowed
    with pytest.raises(RuntimeError, match="shapes"):
        CompiledOrEager(eager, eager, "test").run(lambda m: m(torch.ones(1, 3)))


def test_gpu_bench_runs_tiny_on_the_cpu(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--size", "tiny", "--steps", "2", "--threads", "1", "--compile", "0",
                          "--json", str(tmp_path / "bench.json")])
    printed = capsys.readouterr().out
    assert "device: CPU" in printed and "eager masked 90%" in printed and "sampling (DDIM-2)" in printed
    assert results["train"]["eager dense"]["img_s"] > 0 and results["train"]["eager masked"]["img_s"] > 0
    assert results["sampling"]["eager"]["img_s"] > 0
    assert results["train"]["eager masked/dense step time"] > 0
    assert (tmp_path / "bench.json").exists()


def test_eval_stage_on_two_ranks_writes_the_metrics_of_one(tiny_raw, tmp_path, monkeypatch):
    import json

    from pipeline.app.params import parse_params
    from stages.eval import run_eval
    from stages.features import run_features
    from stages.reference import run_reference

    params = parse_params(tiny_raw)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    run_init(params)
    run_prepare(params)
    run_dense(params, 1)
    run_features(params)
    run_reference(params)
    metrics = tmp_path / "artifacts" / "eval" / "s1" / "r0" / "metrics.json"
    run_eval(params, 1, 0)
    one = json.loads(metrics.read_text())
    metrics.unlink()
    proc = subprocess.run([sys.executable, "-m", "stages.eval", "1", "0"], cwd=tmp_path,
                          env=_env(LTH_NPROC_PER_NODE="2"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    two = json.loads(metrics.read_text())
    assert two.keys() == one.keys()
    for key, value in one.items():
        assert two[key] == (pytest.approx(value, rel=1e-4, abs=1e-6) if isinstance(value, float) else value), key


def test_control_and_its_eval_run_data_parallel_like_a_ticket(tiny_raw, tmp_path, monkeypatch):
    """LTH_NPROC_PER_NODE=2: the control stage relaunches on 2 gloo ranks, rank 0 alone writes its
    start and outputs, and the trained control equals a single-process one; its eval runs on 2
    ranks too and writes the metrics of one."""
    import json

    from pipeline.app.params import parse_params
    from stages.control import run_control
    from stages.eval_control import run_eval_control
    from stages.features import run_features
    from stages.prune import run_prune
    from stages.reference import run_reference

    params = parse_params(tiny_raw)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    run_init(params)
    run_prepare(params)
    run_dense(params, 1)
    run_prune(params, 1, 1)
    run_features(params)
    run_reference(params)
    run_control(params, "random", 1, 1)
    run_eval_control(params, "random", 1, 1)
    out, ev = paths.control_dir("random", 1, 1), paths.control_eval_dir("random", 1, 1)
    one = load_torch(out / "train" / "model.pt")
    one_metrics = json.loads((ev / "metrics.json").read_text())
    start = {name: (out / name).read_bytes() for name in ("mask.pt", "weights.pt", "mask.json", "rewind.json")}
    for name in (*start, "train/model.pt", "train/loss.csv"):
        (out / name).unlink()
    (ev / "metrics.json").unlink()
    paths.control_checkpoint_path("random", 1, 1).unlink()
    # every Python process started records the rank torchrun gave it (none: launcher or parent)
    spy = tmp_path / "spy"
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(
        "import os\nif 'RANK' in os.environ:\n"
        f"    open({str(spy / 'ranks')!r}, 'a').write(os.environ['RANK'] + ' ' + os.environ['WORLD_SIZE'] + '\\n')\n")
    for stage in ("control", "eval_control"):
        env = _env(LTH_NPROC_PER_NODE="2")
        env["PYTHONPATH"] = os.pathsep.join([str(spy), env["PYTHONPATH"]])
        proc = subprocess.run([sys.executable, "-m", f"stages.{stage}", "random", "1", "1"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert sorted((spy / "ranks").read_text().splitlines()) == ["0 2", "1 2"], stage
        (spy / "ranks").unlink()
    assert {name: (out / name).read_bytes() for name in start} == start, "the same start, written once"
    two = load_torch(out / "train" / "model.pt")
    assert_same_training(two["model"], one["model"], params.train.lr, params.train.steps)
    two_metrics = json.loads((ev / "metrics.json").read_text())
    assert two_metrics.keys() == one_metrics.keys()

    def close(value):  # the weights differ by float rounding, so do the metrics
        if isinstance(value, float):
            return pytest.approx(value, rel=1e-4, abs=1e-6)
        return [close(v) for v in value] if isinstance(value, list) else value
    for key, value in one_metrics.items():
        assert two_metrics[key] == close(value), key
