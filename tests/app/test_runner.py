"""The parallel runner's scheduling, on a fake executor (no DVC): order, concurrency, failures."""
import pytest

from pipeline.app import dag
from pipeline.app.parallel import choose_workers, thread_share
from pipeline.app.runner import BLOCKED, CACHED, DONE, FAILED, error_line, log_path, run_plan

# a study's shape: init feeds two seed chains, each prune -> retrain -> eval; report reads both evals
NAMES = ["init", "dense@1", "dense@2", "prune@1", "prune@2", "retrain@1", "retrain@2", "eval@1", "eval@2", "report"]
EDGES = [("dense@1", "init"), ("dense@2", "init"), ("prune@1", "dense@1"), ("prune@2", "dense@2"),
         ("retrain@1", "prune@1"), ("retrain@2", "prune@2"), ("eval@1", "retrain@1"), ("eval@2", "retrain@2"),
         ("report", "eval@1"), ("report", "eval@2")]


class FakeExecutor:
    """Finishes each stage after `ticks` polls; records what ran at once. `fail` stages exit 2
    after writing an error line to their log, as a stage does."""

    def __init__(self, slots, fail=(), ticks=2, unchanged=()):
        self.slots, self.fail, self.ticks, self.unchanged = slots, set(fail), ticks, set(unchanged)
        self.running, self.started, self.finished, self.most = {}, [], [], 0

    def start(self, stage, slot, log):
        assert slot not in self.running.values(), "a slot runs one stage at a time"
        self.running[stage] = slot
        self.most = max(self.most, len(self.running))
        self.started.append(stage)
        log.write_text("" if stage in self.unchanged else f"Running stage '{stage}':\n")
        return {"stage": stage, "polls": 0, "log": log}

    def poll(self, handle):
        handle["polls"] += 1
        if handle["polls"] < self.ticks:
            return None
        del self.running[handle["stage"]]
        self.finished.append(handle["stage"])
        if handle["stage"] in self.fail:
            with open(handle["log"], "a") as out:
                out.write("Traceback ...\nerror: prune: mask.pt is corrupt; run dvc repro -f -s prune@2\n"
                          "ERROR: failed to reproduce 'prune@2': failed to run: python -m stages.prune, exited with 2\n")
            return 2
        return 0

    def stop(self, handle):
        pass


def plan(changed=NAMES, force=False):
    return dag.from_graph(NAMES, EDGES, changed, force=force)


def test_every_stage_runs_after_its_upstream_and_slots_are_used(tmp_path):
    ex = FakeExecutor(slots=2)
    out = run_plan(plan(), ex, tmp_path, poll_seconds=0)
    assert out.ok and set(ex.finished) == set(NAMES)
    for stage, up in EDGES:
        assert ex.finished.index(up) < ex.started.index(stage), f"{stage} started before {up} finished"
    assert ex.most == 2, "two independent chains run side by side"
    one = FakeExecutor(slots=1)
    run_plan(plan(), one, tmp_path, poll_seconds=0)
    assert one.most == 1


def test_a_failed_stage_stops_only_what_depends_on_it(tmp_path):
    ex = FakeExecutor(slots=2, fail={"prune@2"})
    out = run_plan(plan(), ex, tmp_path, poll_seconds=0)
    states = {name: run.state for name, run in out.runs.items()}
    assert states["prune@2"] == FAILED
    assert {s for s, st in states.items() if st == BLOCKED} == {"retrain@2", "eval@2", "report"}
    assert all(states[s] == DONE for s in ("init", "dense@1", "dense@2", "prune@1", "retrain@1", "eval@1"))
    assert not out.ok
    assert out.runs["prune@2"].error == "error: prune: mask.pt is corrupt; run dvc repro -f -s prune@2"
    assert "retrain@2" not in ex.started


def test_plan_holds_changed_stages_and_everything_below_them():
    p = plan(changed={"prune@1"})
    assert p.order == ["prune@1", "retrain@1", "eval@1", "report"]
    assert p.upstream["report"] == {"eval@1"}, "up-to-date stages are not waited for"
    assert p.skipped == len(NAMES) - 4
    assert plan(changed=set()).order == []
    assert plan(changed=set(), force=True).order == NAMES


def test_longest_chain_first_and_width():
    p = plan()
    depth = p.depth()
    assert depth["init"] == 6 and depth["report"] == 1 and depth["dense@1"] == 5
    assert p.width() == 2


def test_unchanged_stages_are_reported_as_such(tmp_path):
    out = run_plan(plan(), FakeExecutor(slots=2, unchanged={"init"}), tmp_path, poll_seconds=0)
    assert out.runs["init"].state == CACHED and out.runs["dense@1"].state == DONE


def test_workers_and_threads_split_the_machine(monkeypatch):
    monkeypatch.delenv("LTH_THREADS", raising=False)
    assert choose_workers("auto", cores=2, gpus=0, width=3) == 2
    assert choose_workers("auto", cores=16, gpus=0, width=3) == 3, "no more workers than the DAG can use"
    assert choose_workers("auto", cores=16, gpus=8, width=30) == 8, "one worker per GPU"
    assert choose_workers("3", cores=2, gpus=0, width=1) == 3
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValueError, match="--jobs"):
            choose_workers(bad, cores=2, gpus=0, width=1)
    assert thread_share(cores=2, workers=2, threads=None) == 1
    assert thread_share(cores=16, workers=3, threads=None) == 5
    assert thread_share(cores=2, workers=2, threads=4) == 4
    monkeypatch.setenv("LTH_THREADS", "2")
    assert thread_share(cores=2, workers=2, threads=None) == 2, "a user's LTH_THREADS wins"


def test_error_line_prefers_the_stage_s_own_line(tmp_path):
    log = log_path(tmp_path, "eval@1-round2")
    log.parent.mkdir(parents=True)
    log.write_text("Running stage 'eval@1-round2':\n> python -m stages.eval 1 2\nerror: eval: bad\n"
                   "ERROR: failed to reproduce 'eval@1-round2': failed to run\n")
    assert error_line(log) == "error: eval: bad"
    log.write_text("Running stage\nERROR: failed to reproduce 'x'\n")
    assert error_line(log) == "ERROR: failed to reproduce 'x'"
    assert log.name == "eval@1-round2.log"


def test_live_view_renders_running_failed_and_waiting(tmp_path):
    """The terminal view (rich Live) and the summary, fed by a real run on the fake executor."""
    import io

    from rich.console import Console

    from pipeline.app.live import View, print_summary

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    with View(console, slots=2) as view:
        assert view.live_mode
        out = run_plan(plan(), FakeExecutor(slots=2, fail={"prune@2"}), tmp_path, on_event=view.event,
                       poll_seconds=0)
    print_summary(console, out, "logs/repro")
    text = buf.getvalue()
    assert "finished" in text and "failed" in text
    assert "failed: prune@2: error: prune: mask.pt is corrupt" in text
    assert "not run because an upstream stage failed: 3 stages" in text
