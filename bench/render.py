"""The chat's rendering of a streaming reply, side by side, in Chromium.

    .venv/bin/python bench/render.py [--chars 8000] [--token 20] [--repeat 3]

A long Markdown reply (paragraphs, lists, code, a table, math) grows by `--token` characters at a time, as a
model streams it, and each contender renders it after every token; the time per token is the median of
`--repeat` runs, measured in the page with performance.now():

1. old:          the hand-written renderer this replaced (static/js/chat-markdown.js at 0ed2cb8), which
                 rebuilt the whole reply on each update;
2. new, full:    the new renderer (markdown-it, DOMPurify, highlight.js, KaTeX) rebuilding the whole reply;
3. new, blocks:  the new renderer as the chat uses it (renderInto), which rebuilds only changed blocks.

The chat renders at most once per animation frame (more tokens than frames cost nothing extra), so the
number that matters is the time of one update at the reply's full length, printed last.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "static" / "vendor"
SCRIPTS = [
    VENDOR / "markdown-it-15.0.3" / "markdown-it.umd.min.js",
    VENDOR / "markdown-it-texmath-1.0.0" / "texmath.js",
    VENDOR / "dompurify-3.5.0" / "purify.min.js",
    VENDOR / "highlight.js-11.12.0" / "highlight.min.js",
    VENDOR / "katex-0.19.1" / "katex.min.js",
    ROOT / "static" / "js" / "chat-markdown.js",
]
OLD_COMMIT = "0ed2cb8"

SECTION = r"""## Step {n}

Some prose with **bold**, `code`, a [link](https://example.com/{n}) and the formula $a_{n} = a_{{n-1}} + {n}$.

- first point about {n}
- second point, a bit longer so that it wraps on a phone screen
  1. nested
  2. items

```python
def step_{n}(values: list[int]) -> int:
    # sum the squares
    return sum(v * v for v in values if v > {n})
```

| name | value |
|------|------:|
| n | {n} |
| square | {sq} |

$$\sum_{{k=1}}^{{{n}}} k = \frac{{{n}({n}+1)}}{{2}}$$

"""

MEASURE = """
async ([source, token, which]) => {
  const box = document.createElement("div");
  document.body.appendChild(box);
  const times = [];
  for (let end = token; end < source.length + token; end += token) {
    const text = source.slice(0, Math.min(end, source.length));
    const started = performance.now();
    if (which === "old") box.replaceChildren(window.OldMarkdown.render(text, {}));
    else if (which === "full") box.replaceChildren(window.LLMSiteMarkdown.render(text, {}));
    else window.LLMSiteMarkdown.renderInto(box, text, {});
    box.getBoundingClientRect();  // layout, as the page would do before painting
    times.push(performance.now() - started);
  }
  box.remove();
  const last = times.slice(-10);
  return {mean: times.reduce((a, b) => a + b, 0) / times.length, last: last.reduce((a, b) => a + b, 0) / last.length,
          updates: times.length};
}
"""


def reply(chars: int) -> str:
    text, n = "", 1
    while len(text) < chars:
        text += SECTION.format(n=n, sq=n * n)
        n += 1
    return text[:chars]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=8000)
    parser.add_argument("--token", type=int, default=20, help="characters a token adds")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    old = subprocess.run(["git", "show", f"{OLD_COMMIT}:static/js/chat-markdown.js"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    source = reply(args.chars)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.set_content("<!doctype html><html><body></body></html>")
        page.add_script_tag(
            content=old + "\nwindow.OldMarkdown = window.LLMSiteMarkdown; delete window.LLMSiteMarkdown;")
        for script in SCRIPTS:
            page.add_script_tag(path=str(script))
        results = {}
        for which in ("old", "full", "blocks"):
            runs = [page.evaluate(MEASURE, [source, args.token, which]) for _ in range(args.repeat)]
            results[which] = {key: statistics.median(run[key] for run in runs) for key in ("mean", "last")}
            results[which]["updates"] = runs[0]["updates"]
        browser.close()

    print(f"A {len(source)}-character reply streamed {args.token} characters at a time "
          f"({results['old']['updates']} updates), median of {args.repeat} runs, Chromium:")
    print(f"{'':24}{'ms/update (mean)':>18}{'ms/update (last 10)':>22}{'vs old (last 10)':>18}")
    for which, label in (("old", "old, hand-written"), ("full", "new, whole reply"), ("blocks", "new, changed blocks")):
        row = results[which]
        print(f"{label:24}{row['mean']:>18.2f}{row['last']:>22.2f}{row['last'] / results['old']['last']:>17.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
