"""Names the similarity analysis and the report share: the U-Net's blocks in forward order and the
labels of ticket pairs. Plain strings only (no torch, no pruning code), so the report can name
blocks and pairs without depending on the analysis itself."""
from __future__ import annotations

import re
from typing import Sequence

# Rank of each block kind along the forward pass. The time-embedding MLP runs first and feeds
# every residual block, so it comes first here but has no place on the input -> output path.
_BLOCK_RANK = {"time": 0, "input": 1, "down": 2, "mid": 3, "up": 4, "output": 5}
_BLOCK_PATTERNS = (
    (re.compile(r"^time_embed\."), lambda m: "time"),
    (re.compile(r"^init_conv\."), lambda m: "input"),
    (re.compile(r"^down\.(\d+)\."), lambda m: f"down{m.group(1)}"),
    (re.compile(r"^mid_(block1|attn|block2)\."), lambda m: "mid"),
    (re.compile(r"^up\.(\d+)\."), lambda m: f"up{m.group(1)}"),  # up.0 is the deepest up level
    (re.compile(r"^final_(block|conv)\."), lambda m: "output"),
)


def block_of(name: str) -> str:
    """Block label of a U-Net parameter name: time, input, down{i}, mid, up{i} or output."""
    for pattern, label in _BLOCK_PATTERNS:
        m = pattern.match(name)
        if m:
            return label(m)
    raise ValueError(f"parameter {name!r} belongs to no known U-Net block")


def block_rank(block: str) -> tuple[int, int]:
    """Sort key of a block label along the forward pass."""
    m = re.fullmatch(r"([a-z]+?)(\d*)", block)
    if not m or m.group(1) not in _BLOCK_RANK:
        raise ValueError(f"unknown block label {block!r}")
    return _BLOCK_RANK[m.group(1)], int(m.group(2) or 0)


def block_order(names: Sequence[str]) -> list[str]:
    """Distinct blocks of these parameter names, in forward order:
    time, input, down0, down1, ..., mid, up0, up1, ..., output."""
    return sorted({block_of(n) for n in names}, key=block_rank)


def pair_label(a, b) -> str:
    """The name of the ticket pair of seeds a and b in tables and summary.json: "a-b"."""
    return f"{a}-{b}"


def parse_pair(label: str) -> tuple:
    """(a, b) of a pair label "a-b" (integers where both are)."""
    a, sep, b = str(label).partition("-")
    if not sep or not a or not b:
        raise ValueError(f"a ticket pair is labelled 'a-b', got {label!r}")
    try:
        return int(a), int(b)
    except ValueError:
        return a, b
