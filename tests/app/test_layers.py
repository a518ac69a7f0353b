"""Imports run one way: each subpackage of pipeline/ imports only from itself and the layers below
it, there is no import cycle between modules, and stages never import each other."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.app.deps import imports_of

ROOT = Path(__file__).resolve().parents[2]
# bottom to top; a module may import its own layer and any layer before it
LAYERS = ("core", "stats", "runtime", "data", "ddpm", "sparsity", "train", "evaluate", "similarity", "report", "app")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / "pipeline").rglob("*.py")) + sorted((ROOT / "stages").glob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] == "stages":
        return len(LAYERS)
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    # a package's __init__ is imported on the way to its modules, not a real edge of theirs
    return {m: {d for d in imports_of(p, ROOT) if d in mods and d != m and not m.startswith(d + ".")}
            for m, p in mods.items()}


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in graph.items():
        for dep in deps:
            lm, ld = _layer(mod), _layer(dep)
            if mod.startswith("stages.") and dep.startswith("stages.") and dep != "stages":
                bad.append(f"{mod} imports another stage, {dep}")
            elif lm is not None and ld is not None and ld > lm:
                bad.append(f"{mod} ({LAYERS[lm] if lm < len(LAYERS) else 'stages'}) imports {dep} ({LAYERS[ld]})")
            elif lm is None and mod != "pipeline" and ld is not None:
                bad.append(f"{mod} sits in no layer of {LAYERS}")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_sits_in_a_layer():
    stray = [m for m in _modules() if m.startswith("pipeline.") and _layer(m) is None]
    assert not stray, f"modules outside the layers {LAYERS}: {stray}"


def test_imports_run_down_the_layers():
    assert layer_violations(_graph()) == []


def test_no_import_cycle():
    assert cycles(_graph()) == []


def test_the_checks_catch_a_wrong_way_import_and_a_cycle():
    graph = _graph()
    graph["pipeline.core.config"] = graph["pipeline.core.config"] | {"pipeline.ddpm.unet"}
    assert any("pipeline.core.config (core) imports pipeline.ddpm.unet (ddpm)" in v for v in layer_violations(graph))
    assert ["pipeline.core.config", "pipeline.ddpm.unet"] in cycles(graph)
    graph["stages.init"] = graph["stages.init"] | {"stages.dense"}
    assert "stages.init imports another stage, stages.dense" in layer_violations(graph)


@pytest.mark.parametrize("package", sorted(p.name for p in (ROOT / "pipeline").iterdir()
                                           if (p / "__init__.py").is_file()))
def test_each_subpackage_docstring_lists_its_files(package):
    init = ROOT / "pipeline" / package / "__init__.py"
    doc = init.read_text()
    files = sorted(p.name for p in init.parent.glob("*.py") if p.name != "__init__.py")
    missing = [f for f in files if f not in doc]
    assert not missing, f"pipeline/{package}/__init__.py does not list {missing}"
