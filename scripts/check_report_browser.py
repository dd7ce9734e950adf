#!/usr/bin/env python3
"""Open an fcnlab HTML report in headless Chromium, check that every image decoded, save a screenshot.

Usage: python scripts/check_report_browser.py report.html [--screenshot shot.png] [--chromium PATH]

The page is copied into a temporary folder (so it must be self-contained: nothing it links to relative to
its own folder is found there) with a small script added at the end of its body; the copy is loaded with
``chromium --headless --dump-dom`` and the script writes, after the ``load`` event, how many images the
page holds and which ones are broken (``!img.complete || img.naturalWidth == 0``). A second run takes a
full-page screenshot, the window as tall as the page (at most 16,000 pixels). The report itself is never
modified. Exit status: 0 every image decoded, 1 a broken image (or none at all), 2 usage error or no
Chromium. Chromium is found as ``--chromium``, ``$CHROMIUM``, or ``chromium``/``chromium-browser``/
``google-chrome`` on the PATH (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
)
WIDTH = 1280
MAX_HEIGHT = 16000
MARK = "fcnlab-image-check"
PROBE = f"""
<script>
window.addEventListener("load", () => {{
  const imgs = [...document.images];
  const broken = imgs.map((img, i) => [i, img]).filter(([, img]) => !(img.complete && img.naturalWidth > 0))
                     .map(([i, img]) => i + ": " + (img.alt || img.src.slice(0, 60)));
  const out = document.createElement("pre");
  out.id = "{MARK}";
  out.textContent = JSON.stringify({{images: imgs.length, broken: broken,
                                     height: document.documentElement.scrollHeight}});
  document.body.appendChild(out);
}});
</script>
"""


def find_chromium(explicit: str | None = None) -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    for candidate in (explicit, os.environ.get("CHROMIUM")):
        if candidate:
            return shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(chromium: str, profile: Path, extra: list[str], url: str, timeout: float) -> subprocess.CompletedProcess:
    cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def check_images(chromium: str, page: Path, work: Path, timeout: float = 120) -> dict:
    """Load a copy of ``page`` with the probe script; return ``{"images", "broken", "height"}``."""
    text = page.read_text(encoding="utf-8", errors="replace")
    probed = re.sub(r"</body>", PROBE + "</body>", text, count=1, flags=re.IGNORECASE)
    if probed == text:
        probed = text + PROBE
    copy = work / "page.html"
    copy.write_text(probed, encoding="utf-8")
    done = _run(chromium, work / "profile", ["--virtual-time-budget=10000", "--dump-dom"], copy.as_uri(), timeout)
    found = re.search(rf'<pre id="{MARK}">(.*?)</pre>', done.stdout, flags=re.DOTALL)
    if found is None:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"chromium did not run the check script (exit {done.returncode}): {tail}")
    return json.loads(html.unescape(found.group(1)))


def screenshot(chromium: str, page: Path, out: Path, height: int, work: Path, timeout: float = 120) -> None:
    """Save a PNG of ``page`` with a window ``WIDTH`` wide and ``height`` tall."""
    out = out.resolve()
    tmp = out.with_name(f".{out.name}.tmp.png")
    try:
        done = _run(
            chromium,
            work / "profile",
            [f"--window-size={WIDTH},{height}", f"--screenshot={tmp}"],
            page.resolve().as_uri(),
            timeout,
        )
        if not tmp.is_file():
            raise RuntimeError(f"chromium wrote no screenshot (exit {done.returncode})")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the HTML report to check")
    parser.add_argument(
        "--screenshot", type=Path, help="PNG to write (default: REPORT_STEM.screenshot.png beside the report)"
    )
    parser.add_argument("--chromium", help="Chromium binary (default: $CHROMIUM or chromium on the PATH)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per Chromium run")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"check_report_browser: error: {args.report}: no such file", file=sys.stderr)
        return 2
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print(
            "check_report_browser: error: no Chromium found; install it (apt-get install -y chromium) or pass "
            "--chromium PATH",
            file=sys.stderr,
        )
        return 2
    shot = args.screenshot or args.report.with_name(f"{args.report.stem}.screenshot.png")
    if shot.resolve() == args.report.resolve():
        print(f"check_report_browser: error: --screenshot {shot}: would overwrite the report", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fcnlab-browser-") as tmp:
        try:
            result = check_images(chromium, args.report, Path(tmp), args.timeout)
            height = max(600, min(int(result.get("height") or 0), MAX_HEIGHT))
            screenshot(chromium, args.report, shot, height, Path(tmp), args.timeout)
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            print(f"check_report_browser: error: {args.report}: {e}", file=sys.stderr)
            return 2
    n, broken = result["images"], result["broken"]
    print(f"{args.report}: {n} images, {len(broken)} broken; screenshot {shot} ({WIDTH}x{height})")
    for item in broken:
        print(f"  broken image {item}")
    if n == 0:
        print(f"{args.report}: the page holds no images", file=sys.stderr)
        return 1
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
