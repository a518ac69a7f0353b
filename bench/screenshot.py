"""A headless-Chromium screenshot of the report page at a reader's first screen (1400 × 1000), to check
that the answer, the FID figure or the paper table and the first findings rows are visible without
scrolling.

Usage:
    python bench/screenshot.py [reports/index.html] [--out /tmp/report.png] [--size 1400,1000]
    python bench/screenshot.py --fake [--out ...]   # build the page from the tests' synthetic results first

Needs a Chromium binary (`apt-get install chromium`, or CHROMIUM=/path/to/chrome).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise SystemExit("no Chromium found: `apt-get install chromium` or set CHROMIUM")


def fake_page(folder: Path) -> Path:
    """The report of the tests' synthetic results (two seeds, two controls) built under `folder`."""
    sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "report")]
    from test_report import _params, make_fake_results  # noqa: E402

    from pipeline.report.build import build_report

    make_fake_results(folder / "artifacts", controls=True)
    build_report(_params(margin=0.5), out_dir=folder / "reports", artifacts_root=folder / "artifacts")
    return folder / "reports" / "index.html"


def screenshot(page: Path, out: Path, size: str = "1400,1000") -> Path:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={size}", f"--screenshot={out}",
                        page.resolve().as_uri()], check=True, capture_output=True, timeout=120)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", nargs="?", type=Path, default=ROOT / "reports" / "index.html")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "report_1400x1000.png")
    ap.add_argument("--size", default="1400,1000")
    ap.add_argument("--fake", action="store_true", help="build the page from the tests' synthetic results")
    args = ap.parse_args()
    if args.fake:
        with tempfile.TemporaryDirectory() as tmp:
            print(screenshot(fake_page(Path(tmp)), args.out, args.size))
    else:
        print(screenshot(args.page, args.out, args.size))


if __name__ == "__main__":
    main()
