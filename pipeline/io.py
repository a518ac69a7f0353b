"""Atomic, byte-stable writes: a killed stage never leaves a half-written artifact behind, and the
same object always gives the same bytes (DVC's early cutoff compares output hashes)."""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch


_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic(path: str | Path, write: Callable[[str], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def torch_bytes(obj: Any) -> bytes:
    """torch.save's bytes of `obj`. torch.save names the archive's root folder after the file it is
    given, so saving to a (random) temp name would put that name inside the file: save to memory."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_torch(obj: Any, path: str | Path) -> Path:
    blob = torch_bytes(obj)
    return _atomic(path, lambda tmp: Path(tmp).write_bytes(blob))


def load_torch(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    # state dicts and plain tensors only: weights_only keeps loading safe
    return torch.load(path, map_location=map_location, weights_only=True)


def save_json(obj: Any, path: str | Path) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")

    return _atomic(path, write)


def load_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


def save_text(text: str, path: str | Path) -> Path:
    return _atomic(path, lambda tmp: Path(tmp).write_text(text))


def save_figure(fig, path: str | Path, **kwargs) -> Path:
    import matplotlib.pyplot as plt

    fmt = Path(path).suffix.lstrip(".") or "png"
    out = _atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, bbox_inches="tight", **kwargs))
    plt.close(fig)
    return out
