#!/usr/bin/python3
"""A PNG of a part of attn show --html's page, as headless Chromium draws it:
by default its model view (every map and head a thumbnail), which the README
shows (docs/model_view.png, made by scripts/readme_screenshot.sh).

    page_screenshot.py PAGE OUT.png [--part CSS] [--width PX] [--chromium PATH]

PAGE is a page written by attn show --html; --part the CSS selector of the
element to capture (default "#model"; "#main" for the map opened below it).
Chromium is driven as the browser test drives it (tests/browser/chromium.py).
Exit status 0 on success, 1 when Chromium fails or the part is missing."""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "browser"))
from chromium import TIMEOUT, Browser, Failure, check  # noqa: E402


def capture(chromium, page, out, part, width):
    with tempfile.TemporaryDirectory(prefix="attn-shot-") as tmp:
        profile = os.path.join(tmp, "profile")
        os.mkdir(profile)
        with open(os.path.join(tmp, "chromium.log"), "w") as log:
            browser = Browser(chromium, profile, log, width=width, height=1000)
            try:
                browser.open_page()
                browser.navigate("file://" + os.path.abspath(page))
                deadline = time.monotonic() + TIMEOUT
                while browser.js("document.documentElement.dataset.readyMs || null") is None:
                    check(time.monotonic() < deadline, "the page set no ready marker")
                    time.sleep(0.05)
                box = browser.js(
                    "(() => { const e = document.querySelector(%s); if (!e) return null;"
                    " const r = e.getBoundingClientRect();"
                    " return [r.x + scrollX, r.y + scrollY, r.width, r.height]; })()"
                    % json.dumps(part))
                check(box is not None, "the page has no element %s" % part)
                margin = 8
                browser.capture(out, {"x": max(0, box[0] - margin), "y": max(0, box[1] - margin),
                                      "width": box[2] + 2 * margin,
                                      "height": box[3] + 2 * margin})
            finally:
                browser.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page")
    parser.add_argument("out")
    parser.add_argument("--part", default="#model")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    try:
        capture(args.chromium, args.page, args.out, args.part, args.width)
    except (Failure, OSError) as e:
        print("page_screenshot: %s" % e, file=sys.stderr)
        return 1
    print("wrote %s (%d bytes)" % (args.out, os.path.getsize(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
