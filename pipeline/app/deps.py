"""Each DVC stage's code deps, derived instead of guessed: the project files in the import closure
of its module `stages/<stage>.py`.

The closure is read statically from the source (every `import`, module level or inside a function,
since a lazy import still runs on some path; packages bring their `__init__.py`). A code change
then re-runs exactly the stages whose code it touches. `lth-diffusion deps` prints the difference
between dvc.yaml and the closures; `lth-diffusion deps --write` puts the closures into dvc.yaml;
tests/app/test_deps.py fails while they disagree.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

PROJECT_PACKAGES = ("pipeline", "stages")
_CMD = re.compile(r"python -m (stages\.\w+)")


def module_path(name: str, root: Path) -> Path | None:
    """The file of project module `name` (a package's __init__.py), or None if it is not ours."""
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path, root: Path) -> str:
    name = _module_name(path, root)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST):
    """Every node of `tree` except the bodies of `if TYPE_CHECKING:` (imports for annotations never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if _type_checking(node):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


def imports_of(path: Path, root: Path) -> set[str]:
    """Project modules that `path` imports, each with the packages above it (whose __init__ runs);
    imports under `if TYPE_CHECKING:` do not run and do not count."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = _package_of(path, root).split(".")
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            # `from package import module` imports that module too
            found.update(f"{base}.{alias.name}" for alias in node.names
                         if module_path(f"{base}.{alias.name}", root) is not None)
    out: set[str] = set()
    for name in found:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {n for n in out if module_path(n, root) is not None}


def closure(module: str, root: Path) -> list[str]:
    """Repository-relative paths of every project file that importing `module` can run."""
    seen: set[str] = set()
    todo = [module, *(".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1))]
    while todo:
        name = todo.pop()
        if name in seen or module_path(name, root) is None:
            continue
        seen.add(name)
        todo.extend(imports_of(module_path(name, root), root))
    return sorted(module_path(n, root).relative_to(root).as_posix() for n in seen)


def stage_modules(root: Path) -> dict[str, str]:
    """DVC stage name -> the module its cmd runs (`python -m stages.<name> ...`)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, spec in stages.items():
        cmd = (spec.get("do") or spec)["cmd"]
        match = _CMD.search(cmd)
        if match:
            out[name] = match.group(1)
    return out


def _is_code(dep: str) -> bool:
    return dep.endswith(".py") and dep.split("/")[0] in PROJECT_PACKAGES


def declared_code_deps(root: Path) -> dict[str, list[str]]:
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return {name: sorted(d for d in (spec.get("do") or spec).get("deps", []) if isinstance(d, str) and _is_code(d))
            for name, spec in stages.items()}


def differences(root: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Stage -> (code deps dvc.yaml lacks, code deps it lists that the stage never imports)."""
    declared = declared_code_deps(root)
    out = {}
    for stage, module in stage_modules(root).items():
        want, have = set(closure(module, root)), set(declared.get(stage, []))
        if want != have:
            out[stage] = (sorted(want - have), sorted(have - want))
    return out


def write(root: Path) -> list[str]:
    """Rewrite each stage's code deps in dvc.yaml to its closure, in place (comments and every other
    line untouched: code deps come first in each deps list). Returns the stages changed."""
    modules, diff = stage_modules(root), differences(root)
    lines = (root / "dvc.yaml").read_text().splitlines(keepends=True)
    out, stage, changed = [], None, []
    i = 0
    while i < len(lines):
        line = lines[i]
        head = re.match(r"^  (\w+):\s*$", line)
        if head:
            stage = head.group(1)
        deps = re.match(r"^(\s+)deps:\s*$", line)
        if deps and stage in diff:
            out.append(line)
            i += 1
            item = None
            rest = []
            while i < len(lines) and re.match(r"^\s+- ", lines[i]):
                dep = lines[i].split("- ", 1)[1].strip()
                item = item or lines[i][: lines[i].index("- ")]
                if not _is_code(dep):
                    rest.append(lines[i])
                i += 1
            out += [f"{item}- {p}\n" for p in closure(modules[stage], root)] + rest
            changed.append(stage)
            continue
        out.append(line)
        i += 1
    (root / "dvc.yaml").write_text("".join(out))
    return changed
