"""`torch.compile` of the U-Net for training and sampling, with a fallback to eager that says why.

A runtime choice, like the rank count: it never enters params or a stage's hash (compiled and eager
agree to float rounding, dropout included: random ops use aten's RNG, not Inductor's own).
`LTH_COMPILE`: `auto` (default: compile on CUDA when the work repays the compilation, never on the
CPU, where compiling takes about a minute and gains nothing; judged on a run's whole length, never
on what a resumed run has left), `1` (compile on any device, whatever the amount of work), `0`
(never).

Compiling the paper's U-Net costs tens of seconds per process (less from Inductor's on-disk cache)
and saves about 0.1 ms per training image (3,381 -> 5,147 img/s on an H200): it pays off after some
300 k training images. So `auto` compiles training from 500 k images (the paper's recipe trains 12.8 M
per run; a smoke study's short stages stay eager) and sampling from 200 k network evaluations
(10 k samples x DDIM-100 = 1 M; a 64-image grid is 3 k).
"""
from __future__ import annotations

import os
from typing import Callable, Optional, TypeVar

import torch
from tqdm.auto import tqdm

ENV_COMPILE = "LTH_COMPILE"
TRAIN_IMAGES_WORTH_COMPILING = 500_000
SAMPLE_EVALS_WORTH_COMPILING = 200_000
T = TypeVar("T")


def compile_wanted(device: torch.device, env: Optional[str] = None, work: int = 0, worth: int = 0) -> bool:
    """Whether to compile for `work` units (images, network evaluations) when compiling pays off
    from `worth` units on."""
    raw = (os.environ.get(ENV_COMPILE, "auto") if env is None else env).strip().lower() or "auto"
    if raw == "auto":
        return device.type == "cuda" and work >= worth
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{ENV_COMPILE}={raw!r}: expected auto, 1 or 0")


def missing_build_tools(device: torch.device) -> Optional[str]:
    """What Inductor's code generation lacks here, or None: on CUDA Triton builds its launcher with
    a C compiler (CC, else gcc or clang) against the Python headers; on the CPU Inductor compiles C++
    (CXX, else g++ or clang++) against them. Without them the first compiled call fails and the run
    goes on eagerly, so say it before."""
    import shutil
    import sysconfig

    if device.type == "cuda":
        names, what = (os.environ.get("CC"), "gcc", "clang"), "a C compiler (CC, gcc or clang)"
    else:
        names, what = (os.environ.get("CXX"), "g++", "clang++"), "a C++ compiler (CXX, g++ or clang++)"
    missing = []
    if not any(shutil.which(n) for n in names if n):
        missing.append(what)
    include = sysconfig.get_paths().get("include") or ""
    if not os.path.isfile(os.path.join(include, "Python.h")):
        missing.append(f"the Python headers ({include or '?'}/Python.h; e.g. apt install python3-dev)")
    return " and ".join(missing) + " missing" if missing else None


def compile_unavailable(device: torch.device) -> Optional[str]:
    """Why torch.compile cannot run here, or None when it can."""
    try:
        import torch._dynamo
    except Exception as err:  # noqa: BLE001 - any import failure means no compiler
        return f"torch._dynamo does not import ({err.__class__.__name__})"
    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python/platform"
    tools = missing_build_tools(device)
    if tools is not None:
        return tools
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


def maybe_compile(module: torch.nn.Module, device: torch.device, what: str, work: int = 0,
                  worth: int = 0) -> CompiledOrEager:
    """The module wrapped for `CompiledOrEager.run`: compiled when wanted (see `compile_wanted`) and
    possible."""
    if not compile_wanted(device, work=work, worth=worth):
        return CompiledOrEager(module, None, what)
    reason = compile_unavailable(device)
    if reason is not None:
        tqdm.write(f"{what}: not compiling ({reason}); running eagerly")
        return CompiledOrEager(module, None, what)
    # Inductor's own RNG would give compiled dropout other masks than eager (max |dw| 2.4e-3 after
    # 3 steps at dropout 0.1): aten's RNG keeps a compiled run on the eager run's (seed, step) stream
    import torch._inductor.config

    torch._inductor.config.fallback_random = True
    return CompiledOrEager(module, torch.compile(module), what)
