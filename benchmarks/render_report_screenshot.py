"""Render the HTML report of a demo run in headless Chromium and check the screenshot.

Runs ``javisbench demo`` (every metric requested: the weight-free ones are scored, the others
are listed as skipped), writes ``report.html`` for one variant and ``compare.txt`` (variant vs
clean), screenshots the page with headless Chromium, and checks the PNG: not blank, and the
charts' colours are there (clearly green and clearly red pixels, compared with the same page
rendered without its figures).  Prints the figures and where the files are; exit status 1 when
a check fails.

    python benchmarks/render_report_screenshot.py [--out DIR] [--n 6] [--variant clean]

Chromium: Debian/Ubuntu ``apt-get install -y chromium``.  The page is opened from a ``file://``
URL with networking features off; it needs none (everything is inline).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        exe = shutil.which(name)
        if exe:
            return exe
    raise SystemExit("no Chromium found: install it (Debian/Ubuntu: apt-get install -y chromium)")


def screenshot(exe: str, page: Path, png: Path, profile: Path, width: int, height: int) -> np.ndarray:
    """Headless screenshot of ``page``: (height, width, 3) int16 RGB."""
    from PIL import Image

    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           f"--screenshot={png}", f"--window-size={width},{height}", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    if not png.is_file():
        raise SystemExit(f"chromium wrote no screenshot (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return np.asarray(Image.open(png).convert("RGB")).astype(np.int16)


def colour_fractions(img: np.ndarray) -> dict[str, float]:
    """Fractions of pixels that are non-white, clearly green, clearly red (heatmap RdYlGn ends)."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return {
        "non_white": float((img.min(axis=2) < 235).mean()),
        "green": float(((g > r + 40) & (g > b + 40)).mean()),
        "red": float(((r > g + 80) & (r > b + 80)).mean()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="working folder (default: a new temporary folder)")
    ap.add_argument("--n", type=int, default=6, help="demo clips")
    ap.add_argument("--variant", default="clean", help="demo variant whose report is rendered")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    a = ap.parse_args()

    exe = find_chromium()
    from javisbench.compare import compare, render_comparison
    from javisbench.demo import run_demo
    from javisbench.report import write_html

    out = a.out or Path(tempfile.mkdtemp(prefix="javisbench-report-"))
    results = run_demo(out / "demo", n_clips=a.n)
    if a.variant not in results:
        raise SystemExit(f"unknown variant {a.variant!r}; the demo has: {', '.join(results)}")
    page = write_html(results[a.variant], out / "report.html")
    others = [v for v in results if v != a.variant]
    (out / "compare.txt").write_text(render_comparison(compare(results[a.variant], results[others[0]], n_boot=1000)) + "\n",
                                     encoding="utf-8")

    img = screenshot(exe, page, out / "report.png", out / "chromium-profile", a.width, a.height)
    bare = out / "report-no-figures.html"
    bare.write_text(re.sub(r"<figure>.*?</figure>", "", page.read_text(encoding="utf-8"), flags=re.S), encoding="utf-8")
    img0 = screenshot(exe, bare, out / "report-no-figures.png", out / "chromium-profile", a.width, a.height)

    with_f, without = colour_fractions(img), colour_fractions(img0)
    html_kb = page.stat().st_size / 1024
    n_png = page.read_text(encoding="utf-8").count("data:image/png;base64,")
    print(f"report: {page} ({html_kb:.0f} KiB, {n_png} inline PNGs); screenshot: {out / 'report.png'} {img.shape[1]}x{img.shape[0]}")
    print(f"pixel std {img.std():.1f}")
    for k in with_f:
        print(f"{k:>9}: with figures {with_f[k]:.4f}, without {without[k]:.4f}")
    checks = {
        "not blank": img.std() > 20 and with_f["non_white"] > 0.05,
        "chart colours present": with_f["green"] > 0.001 or with_f["red"] > 0.001,
        "colours come from the figures": with_f["green"] + with_f["red"] > 5 * (without["green"] + without["red"]),
    }
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    print(f"comparison ({a.variant} vs {others[0]}): {out / 'compare.txt'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
