"""How the chat shows a model's reply, in Chromium against the site served as `make run` serves it.

Replies are stored the way the worker stores a model's text, then the page is opened as a person opens it.
The renderer (static/js/chat-markdown.js: markdown-it, DOMPurify, highlight.js, KaTeX, vendored in
static/vendor/) must show Markdown, code, tables, math and a reasoning model's thinking, and must never turn
what the model writes into live HTML under the site's CSP.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import missing
from tests.test_chat_browser import PASSWORD, USERNAME, sign_in

pytestmark = pytest.mark.browser

RICH = r"""## Plan

1. Measure first
2. Then **optimise** the `hot` loop

```python
def area(r: float) -> float:
    # the circle's area
    return 3.14159 * r ** 2
```

```js
const total = items.reduce((sum, x) => sum + x.price, 0); // "cheap"
```

| GPU | VRAM (GiB) | Fits? |
|:----|----------:|:-----:|
| RTX 4060 | 8 | yes |
| RTX 3090 | 24 | **yes** |

Euler's identity $e^{i\pi} + 1 = 0$ and the root \(\sqrt{2}\) inline; it costs $5 and $10 (money, not math).

$$\int_0^1 x^2\,dx = \frac{1}{3}$$

\[ \sum_{n=1}^{\infty} \frac{1}{n^2} = \frac{\pi^2}{6} \]
"""

THINKING = "The user wants a haiku about rain.\nCount syllables: five, seven, five."
THINK_REPLY = (f"<think>\n{THINKING}\n</think>\n\n"
               "Soft rain on the roof,\n*seven* syllables follow,\nthen five more to end.")
HARMONY_REPLY = (
    "<|channel|>analysis<|message|>Simple arithmetic: 2 + 2 = 4.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>The answer is **4**.<|return|>"
)

# Markup and tricks a model could write; none may become live HTML, a script, or a link but to http(s)/mailto.
HOSTILE_CASES = [
    '<img src=x onerror="window.__pwned=1">',
    "<script>window.__pwned=2</script>",
    "<svg onload=window.__pwned=3></svg>",
    "<iframe src=javascript:window.__pwned=4></iframe>",
    '<a href="javascript:window.__pwned=5">click</a>',
    "<style>body{display:none}</style>",
    "<details open ontoggle=window.__pwned=6>x</details>",
    "[x](javascript:window.__pwned=7)",
    "[x](JaVaScRiPt:window.__pwned=8)",
    "[x](data:text/html,<script>window.__pwned=9</script>)",
    "[x](vbscript:msgbox)",
    "<javascript:window.__pwned=10>",
    "![x](javascript:window.__pwned=11)",
    '[x]( javascript:window.__pwned=12 "t")',
    "[x][ref]\n\n[ref]: javascript:window.__pwned=13",
    "```html\n<img src=x onerror=window.__pwned=14>\n```",
    "`<img src=x onerror=window.__pwned=15>`",
    r"$\href{javascript:window.__pwned=16}{click}$",
    r"$\url{javascript:window.__pwned=17}$",
    r"$\htmlId{x}{y}\htmlStyle{color:red}{z}\htmlData{a=b}{w}$",
    r"$$\includegraphics{https://example.com/x.png}$$",
    "<think><img src=x onerror=window.__pwned=18></think>after",
    "<|channel|>analysis<|message|><script>window.__pwned=19</script><|end|>"
    "<|start|>assistant<|channel|>final<|message|><b onmouseover=window.__pwned=20>x</b>",
    "| <img src=x onerror=window.__pwned=21> | b |\n|---|---|\n| [x](javascript:1) | 2 |",
    "&lt;script&gt;window.__pwned=22&lt;/script&gt; &#60;img src=x onerror=window.__pwned=23&#62;",
]

CSP_WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def stored_conversation(site, replies: list[str], title: str = "Rendering", stats: bool = True) -> int:
    """A conversation of question/reply pairs, stored the way the worker stores a model's text."""
    pairs = json.dumps(replies)
    out = site.manage("shell", "-c", (
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Conversation, Message\n"
        f"user = get_user_model().objects.get(username={USERNAME!r})\n"
        f"conv = Conversation.objects.create(owner=user, title={title!r})\n"
        f"for index, reply in enumerate(json.loads({pairs!r})):\n"
        "    Message.objects.create(conversation=conv, role='user', content=f'Question {index + 1}')\n"
        "    Message.objects.create(conversation=conv, role='assistant', content=reply,\n"
        + ("                           completion_tokens=100, ttft_ms=12.0, decode_tokens_per_s=20.0)\n"
           if stats else "                           )\n")
        + "print(conv.pk)\n"
    ))
    return int(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def rendering_site(site):
    site.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        f"if not User.objects.filter(username={USERNAME!r}).exists():\n"
        f"    User.objects.create_superuser({USERNAME!r}, 'tester@example.com', {PASSWORD!r})\n"
    ))
    return site


def open_conversation(page, site, conversation: int) -> None:
    page.add_init_script(CSP_WATCH)
    sign_in(page, site)
    page.goto(f"{site.url}/chat/c/{conversation}/")
    page.locator("article.msg-assistant .msg-body.md").first.wait_for()


def test_markdown_code_tables_and_math_render_without_csp_violations(rendering_site, chromium, output_dir):
    conversation = stored_conversation(rendering_site, [RICH])
    for name, viewport in [("desktop", {"width": 1366, "height": 900}), ("phone", {"width": 390, "height": 844})]:
        context = chromium.new_context(locale="en-US", viewport=viewport)
        page = context.new_page()
        try:
            open_conversation(page, rendering_site, conversation)
            body = page.locator("article.msg-assistant .msg-body")
            expect(body.locator("h2")).to_have_text("Plan")
            assert body.locator("ol > li").all_inner_texts() == ["Measure first", "Then optimise the hot loop"]
            # Code: highlight.js's classes, the language named, a Copy button.
            python = body.locator(".code-block", has=page.locator("code.language-python"))
            assert python.locator(".code-lang").inner_text() == "python"
            assert python.locator(".hljs-keyword").first.inner_text() == "def"
            assert python.locator(".hljs-comment").inner_text() == "# the circle's area"
            assert python.locator(".hljs-number").count() >= 2
            js = body.locator("code.language-js")
            assert js.locator(".hljs-keyword").first.inner_text() == "const"
            assert js.locator(".hljs-comment").inner_text() == '// "cheap"'
            # The table, with its column alignment as classes (a style attribute would break the CSP).
            table = body.locator("table")
            assert table.locator("th").all_inner_texts() == ["GPU", "VRAM (GiB)", "Fits?"]
            assert table.locator("tbody tr").count() == 2
            assert table.locator("tbody tr").nth(1).locator("td strong").inner_text() == "yes"
            assert table.locator("th").nth(1).get_attribute("class") == "align-right"
            assert table.locator("th").nth(2).get_attribute("class") == "align-center"
            assert table.locator("[style]").count() == 0
            # Math: two inline formulas (money stays text), two displayed ones, each with MathML for readers.
            inline = body.locator(".math-inline .katex")
            assert inline.count() == 2
            assert body.locator(".math-display .katex-display").count() == 2
            assert body.locator(".math math").count() == 4
            annotations = body.locator(".math annotation").evaluate_all("nodes => nodes.map(n => n.textContent)")
            assert annotations[0] == r"e^{i\pi} + 1 = 0" and annotations[1] == r"\sqrt{2}"
            assert "costs $5 and $10 (money, not math)" in body.inner_text()
            # KaTeX's fonts came from this site and were used.
            font = page.evaluate("getComputedStyle(document.querySelector('.math-inline .mathnormal')).fontFamily")
            assert "KaTeX_Math" in font
            page.wait_for_load_state("networkidle")
            assert page.evaluate("document.fonts.check('1em KaTeX_Math')")
            assert page.evaluate("window.__violations") == []
            # Nothing is wider than the phone: tables and formulas scroll inside the message.
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            body.locator("table").scroll_into_view_if_needed()
            page.screenshot(path=output_dir / f"chat-rendering-{name}.png")
        finally:
            context.close()


def test_reasoning_is_folded_with_its_length_and_duration(rendering_site, chromium, output_dir):
    stopped = "<think>Stopped in the middle of a thou"
    conversation = stored_conversation(rendering_site, [THINK_REPLY, HARMONY_REPLY, stopped], title="Reasoning")
    for name, viewport in [("desktop", {"width": 1366, "height": 900}), ("phone", {"width": 390, "height": 844})]:
        context = chromium.new_context(locale="en-US", viewport=viewport, color_scheme="dark")
        if name == "phone":  # the same page in Spanish
            context.add_cookies([{"name": "django_language", "value": "es", "url": rendering_site.url}])
        page = context.new_page()
        try:
            open_conversation(page, rendering_site, conversation)
            replies = page.locator("article.msg-assistant")
            think = replies.nth(0).locator("details.reasoning")
            harmony = replies.nth(1).locator("details.reasoning")
            for details in (think, harmony):
                expect(details).to_have_attribute("data-state", "done")
                assert details.get_attribute("open") is None  # folded
            # Length in characters; duration worked out from the stored tokens and rate, so "about".
            # 100 tokens at 20 tokens/s = 5 s, of which the thinking's share of the characters.
            share = len(THINKING) / len(THINK_REPLY)
            summary = think.locator("summary").inner_text()
            if name == "phone":
                seconds = f"{5 * share:.1f}".replace(".", ",")
                assert summary == f"Razonamiento · {len(THINKING)} caracteres · unos {seconds} s"
                think.locator("summary").click()  # so that the screenshot shows it open in Spanish too
                page.screenshot(path=output_dir / "chat-reasoning-phone-es.png")
                continue
            assert summary == f"Reasoning · {len(THINKING)} characters · about {5 * share:.1f} s"
            assert not think.locator(".reasoning-body").is_visible()
            answer = replies.nth(0).locator(".msg-body > :not(details)")
            assert "Soft rain on the roof" in answer.first.inner_text()
            assert "syllables: five" not in replies.nth(0).locator(".msg-body > p").first.inner_text()
            assert replies.nth(0).locator(".msg-body > p em").inner_text() == "seven"
            assert "<think>" not in replies.nth(0).inner_text()
            think.locator("summary").click()
            expect(think.locator(".reasoning-body")).to_be_visible()
            assert think.locator(".reasoning-body").inner_text().startswith("The user wants a haiku about rain.")
            # gpt-oss's analysis channel: folded the same way, the final channel is the answer.
            chars = len("Simple arithmetic: 2 + 2 = 4.")
            assert harmony.locator("summary").inner_text().startswith(f"Reasoning · {chars} characters · about ")
            assert replies.nth(1).locator(".msg-body > p strong").inner_text() == "4"
            assert "<|" not in replies.nth(1).locator(".msg-body").inner_text()
            # A reply that ended while thinking is not "Thinking…" any more, and has no answer.
            cut = replies.nth(2).locator("details.reasoning")
            expect(cut).to_have_attribute("data-state", "done")
            assert cut.locator("summary").inner_text() == "Reasoning · 31 characters · about 4.1 s"
            assert replies.nth(2).locator(".msg-body > :not(details)").count() == 0
            assert page.evaluate("window.__violations") == []
            page.screenshot(path=output_dir / f"chat-reasoning-{name}.png")
        finally:
            context.close()


def test_every_hostile_markup_case_stays_text(rendering_site, page, output_dir):
    conversation = stored_conversation(rendering_site, HOSTILE_CASES, title="<b>Hostile</b> rendering")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_conversation(page, rendering_site, conversation)
    log = page.locator("#chat-log")
    expect(log.locator("article.msg-assistant .msg-body.md")).to_have_count(len(HOSTILE_CASES))
    for details in log.locator("details.reasoning").all():
        details.locator("summary").click()  # opened, so that anything inside would have to survive a toggle
    page.mouse.move(400, 400)
    page.wait_for_timeout(500)  # time for a handler to fire, if any had been created
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert page.evaluate("window.__violations") == []
    assert log.locator("img, script, iframe, style, object, embed, [onerror], [onload], [onmouseover], [style*=display]"
                       ).count() == 0
    assert log.locator(".msg-body details:not(.reasoning)").count() == 0
    assert log.locator("a").count() == 0  # no case is a link to http(s) or mailto
    hrefs = log.locator("[href]").evaluate_all("nodes => nodes.map(n => n.getAttribute('href'))")
    assert hrefs == []
    text = log.inner_text()
    for shown in ['<img src=x onerror="window.__pwned=1">', "<script>window.__pwned=2</script>",
                  "[x](javascript:window.__pwned=7)", "<javascript:window.__pwned=10>",
                  "<b onmouseover=window.__pwned=20>x</b>",
                  # Entities are decoded, as Markdown says, and the result is text like the rest.
                  "<script>window.__pwned=22</script> <img src=x onerror=window.__pwned=23>"]:
        assert shown in text, shown
    # KaTeX with trust off shows \href and friends as errors, never as links or attributes.
    assert log.locator(".katex [id], .katex [data-a]").count() == 0
    page.screenshot(path=output_dir / "chat-rendering-hostile.png", full_page=True)


def test_the_renderer_api_refuses_every_hostile_case_and_unsafe_link(rendering_site, page):
    page.add_init_script(CSP_WATCH)
    sign_in(page, rendering_site)
    result = page.evaluate(
        """(cases) => cases.map((source) => {
            const box = document.createElement("div");
            box.appendChild(window.LLMSiteMarkdown.render(source, {}));
            document.body.appendChild(box);
            const bad = box.querySelectorAll(
              "img, script, iframe, style, svg:not(.katex svg), object, [onerror], [onload]");
            const links = Array.from(box.querySelectorAll("[href]"), (a) => a.getAttribute("href"));
            box.remove();
            return {source, bad: bad.length, links};
        })""",
        HOSTILE_CASES,
    )
    for case in result:
        assert case["bad"] == 0 and case["links"] == [], case
    # The old renderer's link cases: text stays exactly what the model wrote.
    link_cases = page.evaluate(
        """() => ["[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "[x](data:text/html,<b>)",
                  "[x](vbscript:msgbox)", "<javascript:alert(1)>", "[x](//evil.example/)", "[x](/relative)",
                  "![x](javascript:alert(1))", "[x]( javascript:alert(1) )"].map((source) => {
            const box = document.createElement("div");
            box.appendChild(window.LLMSiteMarkdown.render(source, {}));
            return {source, links: box.querySelectorAll("a").length, text: box.textContent};
        })"""
    )
    for case in link_cases:
        assert case["links"] == 0, case
        assert case["text"].strip() == case["source"].strip(), case
    safe = page.evaluate(
        """() => {
            const box = document.createElement("div");
            box.appendChild(window.LLMSiteMarkdown.render(
                "[docs](https://example.com/a?b=1) <mailto:me@example.com> http://example.org/x.", {}));
            return Array.from(box.querySelectorAll("a"), (a) => [a.getAttribute("href"), a.rel, a.target]);
        }"""
    )
    assert safe == [["https://example.com/a?b=1", "noopener noreferrer nofollow", "_blank"],
                    ["mailto:me@example.com", "noopener noreferrer nofollow", "_blank"],
                    ["http://example.org/x", "noopener noreferrer nofollow", "_blank"]]
    assert page.evaluate("window.__violations") == []


STREAM_SOURCE = RICH + "\n\n- one\n- two\n\n> a quote with `code`\n\n" + "A closing paragraph. " * 20


def test_streaming_renders_only_the_blocks_that_changed(rendering_site, page):
    """Token by token, finished blocks keep their nodes, and the end result equals a render from scratch."""
    sign_in(page, rendering_site)
    result = page.evaluate(
        """(source) => {
            const M = window.LLMSiteMarkdown;
            const box = document.createElement("div");
            document.body.appendChild(box);
            // Tokens of 1 to 6 characters, as a model streams them.
            let position = 0, step = 0, firstHeading = null, headingKept = true, codeKept = true, firstCode = null;
            while (position < source.length) {
              position = Math.min(source.length, position + 1 + (step++ % 6));
              M.renderInto(box, source.slice(0, position), {});
              // Once the next block has begun, a finished block's nodes must stay the same nodes.
              const written = source.slice(0, position);
              const heading = box.querySelector("h2");
              if (written.includes("1. Measure")) {
                if (!firstHeading) firstHeading = heading;
                else if (heading !== firstHeading) headingKept = false;
              }
              const code = box.querySelector(".code-block");
              if (written.includes("```js")) {
                if (!firstCode) firstCode = code;
                else if (code !== firstCode) codeKept = false;
              }
            }
            const scratch = document.createElement("div");
            scratch.appendChild(M.render(source, {}));
            // Time one more token on the long reply: what streaming costs per frame.
            const started = performance.now();
            for (let i = 0; i < 20; i += 1) M.renderInto(box, source + "x".repeat(i + 1), {});
            const perToken = (performance.now() - started) / 20;
            M.renderInto(box, source, {});
            return {same: box.innerHTML === scratch.innerHTML, headingKept, codeKept, steps: step, perToken};
        }""",
        STREAM_SOURCE,
    )
    assert result["steps"] > 200
    assert result["same"], "a streamed render differs from a render of the whole text"
    assert result["headingKept"] and result["codeKept"], "finished blocks were rebuilt while the reply streamed"
    print(f"\nrenderInto on a {len(STREAM_SOURCE)}-character reply: {result['perToken']:.2f} ms per token")


def test_thinking_streams_folded_and_is_timed_on_the_page(rendering_site, page):
    sign_in(page, rendering_site)
    result = page.evaluate(
        """async () => {
            const M = window.LLMSiteMarkdown;
            const box = document.createElement("div");
            document.body.appendChild(box);
            M.startTiming(box);
            M.renderInto(box, "<think>Hmm, let me", {});
            const details = box.querySelector("details.reasoning");
            const during = {state: details.dataset.state, summary: details.querySelector("summary").textContent,
                            answer: box.children.length};
            details.open = true;  // the reader opens it while it streams
            await new Promise((resolve) => setTimeout(resolve, 400));
            M.renderInto(box, "<think>Hmm, let me see.</think>\\n\\nThe **answer**.", {});
            await new Promise((resolve) => setTimeout(resolve, 300));
            M.renderInto(box, "<think>Hmm, let me see.</think>\\n\\nThe **answer**. More.", {});
            const after = box.querySelector("details.reasoning");
            return {during, sameNode: after === details, open: after.open, state: after.dataset.state,
                    summary: after.querySelector("summary").textContent,
                    answer: box.querySelector(":scope > p").textContent};
        }"""
    )
    assert result["during"]["state"] == "thinking"
    assert re.fullmatch(r"Thinking… 11 characters · \d\.\d s", result["during"]["summary"]), result
    assert result["sameNode"] and result["open"], "the fold was rebuilt, or closed on the reader"
    assert result["state"] == "done"
    seconds = float(re.fullmatch(r"Reasoning · 16 characters · (\d+\.\d) s", result["summary"]).group(1))
    assert 0.35 <= seconds < 0.7  # timed to the closing tag, not to the later token
    assert result["answer"] == "The answer. More."


GENERATE = """
import json
import llama_cpp
from advisor.modelfiles import default_model_file
llama = llama_cpp.Llama(model_path=str(default_model_file()), n_ctx=1024, seed=7, verbose=False)
stream = llama.create_chat_completion(
    messages=[{"role": "user", "content": "Show a Python function that adds two numbers, in a code block, "
                                          "then explain it in a short list."}],
    max_tokens=160, temperature=0.0, stream=True)
print(json.dumps([chunk["choices"][0]["delta"].get("content") or "" for chunk in stream]))
"""


def test_a_real_models_tokens_render_one_by_one_like_the_whole_reply(rendering_site, page):
    """SmolLM2's real tokens, as it streams them, through the renderer the chat uses.

    The site's own path (worker, socket, chat.js) is driven by tests/test_chat_browser.py; this one needs
    only the model, so it also shows the renderer at work where the site's worker cannot run.
    """
    from advisor.modelfiles import default_model_file

    if default_model_file() is None:
        missing("the default SmolLM2 model file is not installed (make models)")
    # In a child process: a crash in native code fails this test instead of ending the test run.
    generated = subprocess.run([sys.executable, "-c", GENERATE], capture_output=True, text=True, timeout=600,
                               cwd=Path(__file__).resolve().parent.parent)
    assert generated.returncode == 0, f"llama.cpp failed ({generated.returncode}): {generated.stderr[-2000:]}"
    pieces = json.loads(generated.stdout.strip().splitlines()[-1])
    pieces = [piece for piece in pieces if piece]
    assert len(pieces) > 20
    sign_in(page, rendering_site)
    result = page.evaluate(
        """(pieces) => {
            const M = window.LLMSiteMarkdown;
            const box = document.createElement("div");
            document.body.appendChild(box);
            let text = "";
            for (const piece of pieces) {
              text += piece;
              M.renderInto(box, text, {});
            }
            const scratch = document.createElement("div");
            scratch.appendChild(M.render(text, {}));
            return {same: box.innerHTML === scratch.innerHTML, text: box.textContent,
                    elements: box.querySelectorAll("p, li, pre, code, strong, em, h1, h2, h3").length};
        }""",
        pieces,
    )
    assert result["same"], "the reply rendered token by token differs from the whole reply rendered at once"
    assert result["text"].strip() and result["elements"] > 0
    print(f"\n{len(pieces)} real tokens rendered one by one; reply starts: {''.join(pieces)[:120]!r}")
