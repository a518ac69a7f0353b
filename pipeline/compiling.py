"""`torch.compile` of the U-Net for training and sampling, with a fallback to eager that says why.

A runtime choice, like the rank count: it never enters params or a stage's hash (compiled and eager
agree to float rounding). `LTH_COMPILE`: `auto` (default: compile on CUDA, eager on the CPU, where
compiling takes about a minute and gains nothing), `1` (compile on any device), `0` (never).
"""
from __future__ import annotations

import os
from typing import Callable, Optional, TypeVar

import torch
from tqdm.auto import tqdm

ENV_COMPILE = "LTH_COMPILE"
T = TypeVar("T")


def compile_wanted(device: torch.device, env: Optional[str] = None) -> bool:
    raw = (os.environ.get(ENV_COMPILE, "auto") if env is None else env).strip().lower() or "auto"
    if raw in ("auto",):
        return device.type == "cuda"
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{ENV_COMPILE}={raw!r}: expected auto, 1 or 0")


def compile_unavailable(device: torch.device) -> Optional[str]:
    """Why torch.compile cannot run here, or None when it can."""
    try:
        import torch._dynamo
    except Exception as err:  # noqa: BLE001 - any import failure means no compiler
        return f"torch._dynamo does not import ({err.__class__.__name__})"
    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python/platform"
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "Triton is not installed"
    return None


class CompiledOrEager:
    """Calls a compiled module; the first call that fails to compile switches to the eager module
    for good, with one warning line. Retrying the call is safe: nothing was updated yet."""

    def __init__(self, eager: torch.nn.Module, compiled: Optional[Callable], what: str):
        self.eager, self.compiled, self.what = eager, compiled, what

    @property
    def is_compiled(self) -> bool:
        return self.compiled is not None

    def run(self, fn: Callable[[Callable], T]) -> T:
        """fn(module) with the compiled module, or the eager one if compiling fails."""
        if self.compiled is not None:
            try:
                return fn(self.compiled)
            except Exception as err:  # noqa: BLE001 - the compiler raises many kinds of errors
                if not _is_compile_error(err):
                    raise
                tqdm.write(f"{self.what}: torch.compile failed ({err.__class__.__name__}: "
                           f"{str(err).splitlines()[0][:160] if str(err) else ''}); continuing eagerly")
                self.compiled = None
        return fn(self.eager)


def _is_compile_error(err: Exception) -> bool:
    mod = type(err).__module__ or ""
    return mod.startswith(("torch._dynamo", "torch._inductor")) or "triton" in mod.lower()


def maybe_compile(module: torch.nn.Module, device: torch.device, what: str) -> CompiledOrEager:
    """The module wrapped for `CompiledOrEager.run`: compiled when wanted and possible."""
    if not compile_wanted(device):
        return CompiledOrEager(module, None, what)
    reason = compile_unavailable(device)
    if reason is not None:
        tqdm.write(f"{what}: not compiling ({reason}); running eagerly")
        return CompiledOrEager(module, None, what)
    return CompiledOrEager(module, torch.compile(module), what)
