"""Start-up cost of each DVC stage: wall time of a fresh `python -c "import stages.X"` per stage
module named in dvc.yaml, and where that time goes (`python -X importtime`).

    python bench/startup.py                        # every stage module, 5 timed runs each
    python bench/startup.py --repeats 9 --stages eval prune
    python bench/startup.py --also torchvision --also torch_fidelity   # time extra imports alongside
    python bench/startup.py --json startup.json --dvc                  # + DVC's own per-stage cost

Only dvc.yaml and the `stages.*` module names are assumed: each stage's `cmd` (foreach stages:
`do.cmd`; matrix stages: `cmd`) is searched for `-m stages.<name>`, so the table follows any move
of the library's modules. Importing a stage module must not run it (stages guard their work with
`if __name__ == "__main__"`); a stage that takes longer than --timeout to import is reported as such.

Run it from anywhere with the interpreter the stages use (e.g. .venv/bin/python); it puts the
repository first on PYTHONPATH of every child. `--repo DIR` times another checkout (a scratch copy
with a prototype change, say) with the same script.

Runs are interleaved (each round times every target once, in a rotated order) so that load from
other processes hits all targets alike; compare numbers as ratios within one run, not across runs.
Each target gets wall time (median, min, max) and CPU time (user + sys of the child, median): on a
shared machine the CPU column is the steadier one. Baselines come first: the interpreter alone,
`import torch`, and the floor `import numpy, torch`; "- floor" is a stage's own start-up above it.
Attribution (-X importtime, one run unless --importtime-runs): per stage, the packages imported
directly by project code, heaviest first, each with the project module that imports it (cumulative
time, including whatever it imports first), plus known heavy modules (torch._dynamo, torchvision,
...) with the chain that pulls them in. -X importtime inflates times a little: rank with it,
measure with the table.

Import only: what a stage imports while it runs is not seen here (torch.optim imports
torch._dynamo at an optimizer's first call; loading params builds a meta-device U-Net, so torch).
Deferring an import saves time only in stages that do not import it later anyway.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STAGE_RE = re.compile(r"-m\s+(stages(?:\.[A-Za-z_]\w*)+)")
# heavy modules worth naming wherever they appear in a stage's import tree
NOTABLE = ("torch", "torch._dynamo", "torch.distributed", "sympy", "torchvision", "torch_fidelity", "matplotlib",
           "matplotlib.pyplot", "pandas", "scipy", "scipy.stats", "scipy.linalg", "dvc", "pydantic", "typer",
           "mlxtend", "PIL", "yaml", "tqdm", "numpy")


# ---------------------------------------------------------------- dvc.yaml

def stage_modules(dvc_yaml: Path) -> dict[str, list[str]]:
    """stage module -> the dvc.yaml stage names whose cmd runs it (in dvc.yaml's order)."""
    spec = yaml.safe_load(dvc_yaml.read_text()) or {}
    found: dict[str, list[str]] = {}
    for name, stage in (spec.get("stages") or {}).items():
        body = stage.get("do", stage) if isinstance(stage, dict) else {}
        cmds = body.get("cmd", [])
        for cmd in [cmds] if isinstance(cmds, str) else list(cmds):
            for module in STAGE_RE.findall(str(cmd)):
                found.setdefault(module, []).append(name)
    return found


# ---------------------------------------------------------------- timing

def child_env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(repo), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def time_once(python: str, code: str, repo: Path, timeout: float) -> tuple[float, float]:
    """(wall, cpu) seconds of a fresh interpreter running `code` (inf on timeout; raises on
    failure). CPU = user + sys of the child: far less sensitive than wall time to other load."""
    cpu0, start = _children_cpu(), time.perf_counter()
    try:
        proc = subprocess.run([python, "-c", code], cwd=repo, env=child_env(repo), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return float("inf"), float("inf")
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"`{python} -c {code!r}` failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed, cpu


@dataclass
class Target:
    label: str
    code: str
    stages: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> dict:
        finite = [t for t in self.times if t != float("inf")]
        out = {"label": self.label, "code": self.code, "stages": self.stages, "times_s": self.times,
               "cpu_s": self.cpu, "error": self.error}
        if finite:
            out.update(median_s=statistics.median(finite), min_s=min(finite), max_s=max(finite),
                       cpu_median_s=statistics.median(c for c in self.cpu if c != float("inf")))
        return out


def run_timings(targets: list[Target], python: str, repo: Path, repeats: int, warmup: int,
                timeout: float, log) -> None:
    for rnd in range(warmup + repeats):
        order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
        for t in order:
            if t.error:
                continue
            try:
                sec, cpu = time_once(python, t.code, repo, timeout)
            except RuntimeError as err:
                t.error = str(err)
                continue
            if rnd >= warmup:
                t.times.append(sec)
                t.cpu.append(cpu)
        log(f"  round {rnd + 1}/{warmup + repeats}{' (warm-up)' if rnd < warmup else ''} done")


# ---------------------------------------------------------------- -X importtime

@dataclass
class Node:
    name: str
    self_us: int
    cum_us: int
    depth: int
    children: list["Node"] = field(default_factory=list)
    parent: "Node | None" = None


LINE_RE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)\s*$")


def parse_importtime(stderr: str) -> list[Node]:
    """The import tree of one -X importtime run (its roots, in import order). Lines come children
    first; a line's depth is its name's indent (two spaces a level)."""
    stack: list[Node] = []
    for line in stderr.splitlines():
        m = LINE_RE.match(line)
        if not m:
            continue
        node = Node(m.group(4), int(m.group(1)), int(m.group(2)), (len(m.group(3)) - 1) // 2)
        while stack and stack[-1].depth > node.depth:
            child = stack.pop()
            child.parent = node
            node.children.insert(0, child)
        stack.append(node)
    return stack


def walk(nodes: list[Node]):
    for n in nodes:
        yield n
        yield from walk(n.children)


def top(name: str) -> str:
    return name.split(".", 1)[0]


def project_packages(repo: Path) -> set[str]:
    return {p.name for p in repo.iterdir() if p.is_dir() and (p / "__init__.py").exists()} | {"stages"}


def chain(node: Node, project: set[str]) -> list[str]:
    """Importers of `node`, nearest first, up to and including the nearest project module."""
    out, cur = [], node.parent
    while cur is not None:
        out.append(cur.name)
        if top(cur.name) in project:
            break
        cur = cur.parent
    if not out:
        return ["(a root: the timed statement itself, or imported at exit)"]
    # within each run of one package keep where it is entered, what pulls it in, and its __init__
    kept: list[str] = []
    i = 0
    while i < len(out):
        j = i
        while j + 1 < len(out) and top(out[j + 1]) == top(out[i]):
            j += 1
        run = out[i:j + 1]
        keep = [k for k, name in enumerate(run) if k in (0, len(run) - 1) or name == top(name)]
        for a, k in enumerate(keep):
            if a and k - keep[a - 1] > 1:
                kept.append("..")
            kept.append(run[k])
        i = j + 1
    return kept


def attribute(roots: list[Node], project: set[str], stdlib: set[str]) -> dict:
    """direct: third-party packages imported by project code, summed over the places each is first
    entered from project code; notable: NOTABLE modules wherever they are first imported."""
    direct: dict[str, dict] = {}
    notable: dict[str, dict] = {}
    for n in walk(roots):
        pkg = top(n.name)
        parent_pkg = top(n.parent.name) if n.parent else None
        entered_from_project = parent_pkg in project or parent_pkg is None
        if pkg not in project and pkg not in stdlib and pkg != parent_pkg and entered_from_project:
            d = direct.setdefault(pkg, {"package": pkg, "cum_us": 0, "via": []})
            d["cum_us"] += n.cum_us
            if n.parent and n.parent.name not in d["via"]:
                d["via"].append(n.parent.name)
        if n.name in NOTABLE and n.name not in notable:
            notable[n.name] = {"module": n.name, "cum_us": n.cum_us, "chain": chain(n, project)}
    project_nodes = {}
    for n in walk(roots):
        if top(n.name) in project and n.name not in project_nodes:
            project_nodes[n.name] = n.cum_us
    return {"direct": sorted(direct.values(), key=lambda d: -d["cum_us"]),
            "notable": sorted(notable.values(), key=lambda d: -d["cum_us"]),
            "project_cum_us": project_nodes}


def importtime(python: str, code: str, repo: Path, timeout: float) -> list[Node]:
    proc = subprocess.run([python, "-X", "importtime", "-c", code], cwd=repo, env=child_env(repo),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return parse_importtime(proc.stderr)


def median_attribution(runs: list[dict]) -> dict:
    """Per-package medians over several importtime runs (packages missing from a run count 0)."""
    if len(runs) == 1:
        return runs[0]
    out = {}
    for key, ident in (("direct", "package"), ("notable", "module")):
        names = {d[ident]: d for r in runs for d in r[key]}
        rows = []
        for name, example in names.items():
            vals = [next((d["cum_us"] for d in r[key] if d[ident] == name), 0) for r in runs]
            rows.append({**example, "cum_us": int(statistics.median(vals))})
        out[key] = sorted(rows, key=lambda d: -d["cum_us"])
    mods = {m for r in runs for m in r["project_cum_us"]}
    out["project_cum_us"] = {m: int(statistics.median(r["project_cum_us"].get(m, 0) for r in runs)) for m in mods}
    return out


# ---------------------------------------------------------------- dvc repro overhead

def dvc_overhead(python: str, n_stages: int, repeats: int, log) -> dict:
    """`dvc repro` of trivial stages (a shell command writing one small out) in a throwaway git +
    dvc repository: a one-stage and an n-stage chain, from scratch and unchanged. The difference
    is DVC's own cost per stage (hashing, cache, lock file); the one-stage time less that is its
    fixed cost per `dvc repro` (start-up, reading the pipeline)."""
    dvc = shutil.which("dvc", path=str(Path(python).parent)) or shutil.which("dvc")
    git = shutil.which("git")
    if not dvc or not git:
        return {"error": "dvc or git not found"}
    results: dict = {"dvc": dvc, "n_stages": n_stages}

    def make_repo(root: Path, n: int) -> None:
        env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
               "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
        subprocess.run([git, "init", "-q"], cwd=root, check=True, env=env)
        subprocess.run([dvc, "init", "-q"], cwd=root, check=True, env=env)
        subprocess.run([dvc, "config", "core.analytics", "false"], cwd=root, check=True, env=env)
        # a chain shaped like the study's stages: each reads params, a 1 MB input and its
        # predecessor's output, and writes one output
        (root / "input.bin").write_bytes(bytes(range(256)) * 4096)
        (root / "params.yaml").write_text(yaml.safe_dump({"p": {"a": 1, "b": [1, 2]}}))
        stages = {f"s{i}": {"cmd": f"cat input.bin {f'out{i - 1}.txt' if i else ''} | wc -c > out{i}.txt",
                            "deps": ["input.bin", *([f"out{i - 1}.txt"] if i else [])],
                            "params": ["p.a"], "outs": [f"out{i}.txt"]} for i in range(n)}
        (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
        subprocess.run([git, "add", "-A"], cwd=root, check=True, env=env)
        subprocess.run([git, "commit", "-qm", "bench"], cwd=root, check=True, env=env)

    def repro(root: Path) -> float:
        env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
        start = time.perf_counter()
        subprocess.run([dvc, "repro", "-q"], cwd=root, check=True, env=env, capture_output=True)
        return time.perf_counter() - start

    for n in sorted({1, n_stages}):
        fresh, cached = [], []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="dvc-startup-") as tmp:
                root = Path(tmp)
                make_repo(root, n)
                fresh.append(repro(root))
                cached.append(repro(root))
        results[f"{n}_stage_fresh_s"] = statistics.median(fresh)
        results[f"{n}_stage_unchanged_s"] = statistics.median(cached)
        log(f"  dvc repro, {n} stage(s): fresh {statistics.median(fresh):.2f} s, "
            f"unchanged {statistics.median(cached):.2f} s")
    if n_stages > 1:
        for kind in ("fresh", "unchanged"):
            one, many = results[f"1_stage_{kind}_s"], results[f"{n_stages}_stage_{kind}_s"]
            results[f"per_stage_{kind}_s"] = (many - one) / (n_stages - 1)
            results[f"fixed_{kind}_s"] = one - results[f"per_stage_{kind}_s"]
    start = time.perf_counter()
    subprocess.run([dvc, "--version"], check=True, capture_output=True)
    results["dvc_version_s"] = time.perf_counter() - start
    return results


# ---------------------------------------------------------------- main

def fmt_s(us: int) -> str:
    return f"{us / 1e6:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per target (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (page cache, .pyc)")
    ap.add_argument("--stages", nargs="+", default=None,
                    help="only these: dvc.yaml stage names or stage modules (stages.eval or eval)")
    ap.add_argument("--also", action="append", default=[],
                    help="also time `import MOD` (repeatable), e.g. --also torchvision")
    ap.add_argument("--importtime-runs", type=int, default=1, help="-X importtime runs per stage (median)")
    ap.add_argument("--top", type=int, default=6, help="heaviest direct imports shown per stage")
    ap.add_argument("--no-importtime", action="store_true", help="wall times only")
    ap.add_argument("--dvc", action="store_true", help="also time `dvc repro` of no-op stages in a temp repo")
    ap.add_argument("--dvc-stages", type=int, default=5, help="stages in the --dvc pipeline (default 5)")
    ap.add_argument("--python", default=sys.executable, help="interpreter the stages run under")
    ap.add_argument("--repo", type=Path, default=REPO, help="repository root (holds dvc.yaml)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before an import counts as hung")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    repo = args.repo.resolve()
    modules = stage_modules(repo / "dvc.yaml")
    if args.stages:
        want = set(args.stages)
        modules = {m: s for m, s in modules.items()
                   if m in want or m.removeprefix("stages.") in want or want & set(s)}
        if not modules:
            ap.error(f"no stage module matches {args.stages}")

    baselines = [Target("python (no imports)", "pass"), Target("import torch", "import torch"),
                 Target("floor: import numpy, torch", "import numpy, torch")]
    extras = [Target(f"import {m}", f"import {m}") for m in args.also]
    stage_targets = [Target(m.removeprefix("stages."), f"import {m}", stages) for m, stages in modules.items()]
    targets = baselines + extras + stage_targets
    log(f"timing {len(targets)} targets x {args.repeats} (+{args.warmup} warm-up) with {args.python}")
    run_timings(targets, args.python, repo, args.repeats, args.warmup, args.timeout, log)

    project = project_packages(repo)
    stdlib = set(getattr(sys, "stdlib_module_names", ())) | {"__future__", "_distutils_hack", "encodings"}
    attributions: dict[str, dict] = {}
    if not args.no_importtime:
        for t in stage_targets + extras:
            if t.error:
                continue
            runs = []
            for _ in range(args.importtime_runs):
                try:
                    runs.append(attribute(importtime(args.python, t.code, repo, args.timeout), project, stdlib))
                except (RuntimeError, subprocess.TimeoutExpired) as err:
                    t.error = f"importtime: {err}"
                    break
            if runs:
                attributions[t.label] = median_attribution(runs)
        log("importtime done")

    floor = baselines[2].summary().get("median_s")
    floor_cpu = baselines[2].summary().get("cpu_median_s")
    print()
    print(f"python {platform.python_version()} ({args.python}), {os.cpu_count()} CPUs, "
          f"{args.repeats} runs each, interleaved; seconds (wall: median min max; cpu: median user+sys)")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (wall times inflate with it, cpu less)")
    width = max(len(t.label) for t in targets) + 2
    print(f"{'target':<{width}}{'median':>8}{'min':>8}{'max':>8}{'cpu':>8}{'- floor':>9}{'cpu-fl':>8}  dvc stages")
    for t in targets:
        s = t.summary()
        if "median_s" not in s:
            print(f"{t.label:<{width}}  {'FAILED' if t.error else 'TIMEOUT'}: {(t.error or '').splitlines()[-1:]}")
            continue
        rel = t in stage_targets
        over = f"{s['median_s'] - floor:+9.2f}" if floor is not None and rel else " " * 9
        over_cpu = f"{s['cpu_median_s'] - floor_cpu:+8.2f}" if floor_cpu is not None and rel else " " * 8
        print(f"{t.label:<{width}}{s['median_s']:8.2f}{s['min_s']:8.2f}{s['max_s']:8.2f}{s['cpu_median_s']:8.2f}"
              f"{over}{over_cpu}  {', '.join(t.stages)}")
        if t is baselines[-1] or (extras and t is extras[-1]):
            print("-" * (width + 49))

    if attributions:
        print("\nwhere the time goes (-X importtime, cumulative s; 'via' = the project module that imports it)")
        for label, att in attributions.items():
            direct = ", ".join(
                f"{d['package']} {fmt_s(d['cum_us'])} (via {'/'.join(d['via'][:2]) or 'the statement'})"
                for d in att["direct"][:args.top])
            print(f"{label}: {direct}")
            heavy = [n for n in att["notable"] if n["cum_us"] >= 50_000 and n["module"] != "torch"]
            for n in heavy:
                via = " <- ".join(n["chain"]).replace(" <- .. <- ", " <.. ")
                print(f"    {n['module']:<18} {fmt_s(n['cum_us'])}  <- {via}")

    result = {"loadavg": os.getloadavg(), "python": args.python, "python_version": platform.python_version(),
              "cpus": os.cpu_count(), "repeats": args.repeats, "repo": str(repo),
              "targets": [t.summary() for t in targets], "importtime": attributions}
    if args.dvc:
        log("timing dvc repro in a throwaway repository")
        result["dvc_repro"] = dvc = dvc_overhead(args.python, args.dvc_stages, max(1, min(args.repeats, 3)), log)
        if "error" in dvc:
            print(f"\ndvc repro: {dvc['error']}")
        else:
            print(f"\ndvc repro of no-op stages (median of {max(1, min(args.repeats, 3))}): "
                  f"1 stage {dvc['1_stage_fresh_s']:.2f} s fresh / {dvc['1_stage_unchanged_s']:.2f} s unchanged; "
                  f"{dvc['n_stages']} stages {dvc[str(dvc['n_stages']) + '_stage_fresh_s']:.2f} s / "
                  f"{dvc[str(dvc['n_stages']) + '_stage_unchanged_s']:.2f} s")
            if "per_stage_fresh_s" in dvc:
                print(f"  per extra stage: {dvc['per_stage_fresh_s']:.2f} s run, "
                      f"{dvc['per_stage_unchanged_s']:.2f} s skipped; fixed: {dvc['fixed_fresh_s']:.2f} s "
                      f"(`dvc --version` alone: {dvc['dvc_version_s']:.2f} s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 1 if any(t.error for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
