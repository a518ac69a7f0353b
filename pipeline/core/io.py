"""Atomic, byte-stable writes: a killed stage (or a full disk) never leaves a half-written artifact
behind, the same object always gives the same bytes (DVC's early cutoff compares output hashes), and
loads that fail on a damaged file say which file and which stage rebuilds it (`ArtifactError`)."""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pipeline.core.errors import ArtifactError

if TYPE_CHECKING:
    import torch

# torch is imported where a torch file is read or written, not here: stages that handle only JSON
# and figures (similarity's and report's readers) start without it


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
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_torch(obj: Any, path: str | Path) -> Path:
    blob = torch_bytes(obj)
    return _atomic(path, lambda tmp: Path(tmp).write_bytes(blob))


def _first_non_finite(obj: Any, where: str = "") -> str | None:
    """Key path of the first floating tensor in `obj` holding a NaN or infinity (None: all finite)."""
    import torch

    if isinstance(obj, torch.Tensor):
        bad = obj.is_floating_point() and obj.numel() > 0 and not bool(torch.isfinite(obj).all())
        return (where or "tensor") if bad else None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = _first_non_finite(value, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def load_torch(path: str | Path, map_location: "str | torch.device" = "cpu") -> Any:
    """A torch file's content; a missing, truncated, corrupt or NaN-holding file raises ArtifactError."""
    import torch

    path = Path(path)
    if not path.exists():
        raise ArtifactError(path, "missing")
    try:
        # state dicts and plain tensors only: weights_only keeps loading safe
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... on bad bytes
        size = path.stat().st_size
        raise ArtifactError(path, f"unreadable ({size:,} bytes; truncated or corrupt: "
                                  f"{str(err).splitlines()[0][:120] if str(err) else type(err).__name__})") from None
    bad = _first_non_finite(obj)
    if bad:
        raise ArtifactError(path, f"holds NaN or infinite values (in {bad})")
    return obj


def save_json(obj: Any, path: str | Path) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")

    return _atomic(path, write)


def load_json(path: str | Path) -> Any:
    """A JSON file's content; a missing, truncated or malformed file raises ArtifactError."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(path, "missing")
    try:
        with open(path) as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise ArtifactError(path, f"not valid JSON (truncated or corrupt: {str(err).splitlines()[0][:120]})") from None


def save_text(text: str, path: str | Path) -> Path:
    return _atomic(path, lambda tmp: Path(tmp).write_text(text))


def save_figure(fig, path: str | Path, **kwargs) -> Path:
    import matplotlib.pyplot as plt

    fmt = Path(path).suffix.lstrip(".") or "png"
    out = _atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, bbox_inches="tight", **kwargs))
    plt.close(fig)
    return out
