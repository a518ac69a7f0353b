"""A throwaway copy of this repository's pipeline, as its own git + DVC project, for end-to-end tests."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.app.params import parse_params

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("pipeline", "stages", "dvc.yaml")


class DvcProject:
    def __init__(self, path: Path, params: dict):
        self.path = path
        for name in COPIED:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, path / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, path / name)
        # DVC needs every key a stage names: write the complete, validated params
        full = parse_params(params).model_dump(mode="json")
        (path / "params.yaml").write_text(yaml.safe_dump(full, sort_keys=False))
        data_root = path / full["data"]["root"]  # the prepare stage depends on data.root
        data_root.mkdir(parents=True, exist_ok=True)
        if not any(data_root.iterdir()):
            (data_root / "README.md").write_text("data.root\n")
        (path / ".gitignore").write_text("/artifacts/\n__pycache__/\n")
        self.env = dict(os.environ)
        # stage commands say `python`: make it this interpreter, and the package importable
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["PYTHONPATH"] = str(path)
        self.env["TQDM_DISABLE"] = "1"
        for key, value in (("GIT_AUTHOR_NAME", "test"), ("GIT_AUTHOR_EMAIL", "test@example.invalid"),
                           ("GIT_COMMITTER_NAME", "test"), ("GIT_COMMITTER_EMAIL", "test@example.invalid")):
            self.env.setdefault(key, value)
        self.run("git", "init", "-q")
        self.dvc("init", "-q")
        self.dvc("config", "core.analytics", "false")
        self.commit("project")

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run(args, cwd=self.path, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def popen_dvc(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "dvc", *args], cwd=self.path, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message, "--allow-empty")

    @staticmethod
    def ran(output: str) -> set[str]:
        """Names of the stages a dvc command actually ran."""
        return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}
