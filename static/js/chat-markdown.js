// Model output (untrusted text) to the page: Markdown, code, tables, math and a reasoning model's thinking.
//
// The work is done by maintained libraries vendored in static/vendor/ (versions and licences in its README):
// markdown-it parses, markdown-it-texmath finds math, highlight.js colours code, KaTeX typesets math, and
// DOMPurify sanitises the HTML before any of it reaches the page.
//
// Safety, in layers:
// 1. markdown-it runs with `html: false`: markup the model writes is escaped and shown as the text it is.
// 2. Links are made only for http:, https: and mailto: addresses (validateLink); anything else stays text.
//    Images are never loaded (that would tell a third party the page was read): they become links.
// 3. The HTML markdown-it makes goes through DOMPurify with a short list of tags and attributes (no style,
//    no event handlers, no images), into an inert fragment; only that fragment is put on the page.
// 4. Math is typeset by KaTeX into DOM nodes (katex.render, trust off), so its sizes are set through the CSSOM,
//    which the site's CSP (style-src 'self', no inline styles) allows, and no HTML string is parsed for it.
"use strict";

(function () {
  const markdownit = window.markdownit;
  const DOMPurifyFactory = window.DOMPurify;
  const hljs = window.hljs;
  const katex = window.katex;
  const texmath = window.texmath;
  if (!markdownit || !DOMPurifyFactory) return; // without them, chat.js keeps messages as plain text

  const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

  // The URL to put in href, or null when the address is not one we link to.
  function safeUrl(raw) {
    const text = String(raw || "").trim();
    if (!/^(https?:\/\/|mailto:)/i.test(text)) return null;
    try {
      const url = new URL(text);
      return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
    } catch (error) {
      return null;
    }
  }

  const escapeHtml = (text) =>
    String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

  // --- markdown-it ------------------------------------------------------------------------------------------------
  // Code without a language is guessed among these only: guessing among all of highlight.js's is slow.
  const GUESS_LANGUAGES = ["python", "javascript", "typescript", "bash", "c", "cpp", "java", "go", "rust", "sql",
    "json", "xml", "css", "yaml"];
  const MAX_GUESS = 5000; // characters; longer unlabeled code is shown plain

  function highlight(code, language) {
    if (!hljs) return "";
    try {
      const name = String(language || "").toLowerCase();
      if (name && hljs.getLanguage(name)) return hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
      if (!name && code.length <= MAX_GUESS) return hljs.highlightAuto(code, GUESS_LANGUAGES).value;
    } catch (error) {
      // a grammar that fails shows the code plain
    }
    return "";
  }

  const md = markdownit({ html: false, linkify: true, breaks: true, typographer: false, highlight });
  md.linkify.set({ fuzzyLink: false, fuzzyEmail: false }); // only addresses written with their scheme
  md.validateLink = (url) => safeUrl(url) !== null;

  if (texmath && katex) {
    // "$5 and $10" is money, not math: inline $...$ may not hold another unescaped $, nor start or end with a
    // space (pandoc's rule), so a dollar amount stays text.
    for (const rule of texmath.rules.dollars.inline) {
      if (rule.name === "math_inline") rule.rex = /\$((?:[^\s\\$])|(?:[^\s$](?:[^$\n\\]|\\.)*?[^\s\\$]))\$/gy;
    }
    md.use(texmath, { engine: { renderToString: () => "" }, delimiters: ["dollars", "brackets"] });
    // texmath would render math to an HTML string with inline styles; it leaves a placeholder instead, which
    // typesetMath() fills with nodes once the HTML is sanitised.
    for (const name of Object.keys(md.renderer.rules)) {
      if (!name.startsWith("math_")) continue;
      const display = name !== "math_inline";
      md.renderer.rules[name] = (tokens, index) =>
        display
          ? `<div class="math math-display">${escapeHtml(tokens[index].content)}</div>\n`
          : `<span class="math math-inline">${escapeHtml(tokens[index].content)}</span>`;
    }
  }

  // Images become links to the image, labelled with their description.
  md.renderer.rules.image = (tokens, index, options, env) => {
    const token = tokens[index];
    const label = `${env.imageLabel || "image"}: ${token.content || token.attrGet("src")}`;
    return `<a href="${escapeHtml(token.attrGet("src"))}">${escapeHtml(label)}</a>`;
  };

  // Table alignment arrives as style="text-align:..", which the CSP would refuse: a class says it instead.
  md.core.ruler.push("align_classes", (state) => {
    for (const token of state.tokens) {
      if (token.type !== "th_open" && token.type !== "td_open") continue;
      const style = token.attrGet("style");
      if (!style) continue;
      token.attrs = token.attrs.filter(([name]) => name !== "style");
      const align = /text-align:\s*(\w+)/.exec(style);
      if (align && align[1] !== "left") token.attrJoin("class", `align-${align[1]}`);
    }
  });

  // --- Sanitising ----------------------------------------------------------------------------------------------------
  const purify = DOMPurifyFactory(window);
  const PURIFY = {
    ALLOWED_TAGS: ["a", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
      "li", "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul"],
    ALLOWED_ATTR: ["href", "class", "start"],
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  };
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      const href = safeUrl(node.getAttribute("href"));
      if (href === null) node.removeAttribute("href");
      else {
        node.setAttribute("href", href);
        node.setAttribute("rel", "noopener noreferrer nofollow");
        node.setAttribute("target", "_blank");
      }
    }
    // Classes come from markdown-it and highlight.js; nothing else may style itself into the page's chrome.
    if (node.hasAttribute && node.hasAttribute("class")) {
      const kept = node.getAttribute("class").split(/\s+/).filter((name) => /^(hljs(-[\w-]+)?|language-[\w+#.-]+|align-(center|right)|math(-inline|-display)?|[a-z]+_)$/.test(name));
      if (kept.length) node.setAttribute("class", kept.join(" "));
      else node.removeAttribute("class");
    }
  });

  const KATEX_OPTIONS = { throwOnError: false, trust: false, strict: "ignore", maxSize: 50, maxExpand: 500,
    output: "htmlAndMathml" };

  function typesetMath(root) {
    for (const node of root.querySelectorAll(".math")) {
      const tex = node.textContent;
      try {
        katex.render(tex, node, { ...KATEX_OPTIONS, displayMode: node.classList.contains("math-display") });
      } catch (error) {
        node.textContent = tex; // KaTeX reports bad TeX inline; anything else shows the source
      }
      node.title = tex;
    }
  }

  // A fenced code block gets a head with its language and a Copy button.
  function wrapCode(root, options) {
    for (const pre of root.querySelectorAll("pre")) {
      const code = pre.querySelector("code");
      const wrapper = document.createElement("div");
      wrapper.className = "code-block";
      const head = document.createElement("div");
      head.className = "code-head";
      const language = document.createElement("span");
      language.className = "code-lang";
      const match = code && /(?:^|\s)language-(\S+)/.exec(code.className);
      language.textContent = match ? match[1] : "";
      if (match) code.dataset.language = match[1];
      if (code) {
        code.classList.add("hljs");
        // markdown-it keeps the newline before the closing fence; Copy should not.
        let last = code.lastChild;
        while (last && last.nodeType !== Node.TEXT_NODE) last = last.lastChild;
        if (last && last.data.endsWith("\n")) last.data = last.data.slice(0, -1);
      }
      const copy = document.createElement("button");
      copy.type = "button";
      copy.className = "copy-code";
      copy.textContent = options.copyLabel || "Copy";
      head.append(language, copy);
      pre.tabIndex = 0;  // a code block wider than the screen scrolls: the keyboard must reach it (WCAG 2.1.1)
      pre.replaceWith(wrapper);
      wrapper.append(head, pre);
    }
  }

  function toNodes(html, options) {
    const fragment = purify.sanitize(html, PURIFY);
    wrapCode(fragment, options);
    if (katex) typesetMath(fragment);
    return Array.from(fragment.childNodes);
  }

  // --- Blocks: a streaming reply re-renders only the blocks whose source changed -----------------------------------
  // Top-level blocks of a parse, each with the source lines it came from (its key) and its tokens.
  function topLevelBlocks(tokens, lines, prefix) {
    const blocks = [];
    let start = 0;
    let depth = 0;
    tokens.forEach((token, index) => {
      depth += token.nesting;
      if (depth !== 0) return;
      const first = tokens[start];
      const map = first.map || [0, 0];
      blocks.push({ key: `${prefix}${first.type}:${lines.slice(map[0], map[1]).join("\n")}`, tokens: tokens.slice(start, index + 1) });
      start = index + 1;
    });
    return blocks;
  }

  // Renders `text` into `container` after `before` (a node of container, or null for its start), reusing the
  // nodes of blocks that did not change since the last call with the same `cache` (an array it keeps).
  function renderBlocks(container, text, cache, options) {
    const env = { imageLabel: options.imageLabel };
    const tokens = md.parse(text, env);
    // A link reference defined further down changes blocks above it: a new set of them re-renders everything.
    const prefix = `${Object.keys(env.references || {}).join("\u0000")}\u0001`;
    const blocks = topLevelBlocks(tokens, text.split("\n"), prefix);
    let same = 0;
    while (same < blocks.length && same < cache.length && blocks[same].key === cache[same].key) same += 1;
    for (const old of cache.splice(same)) for (const node of old.nodes) node.remove();
    let anchor;
    if (cache.length) anchor = cache[cache.length - 1].nodes.at(-1).nextSibling;
    else if (options.after) anchor = options.after.nextSibling;
    else anchor = container.firstChild;
    for (const block of blocks.slice(same)) {
      const nodes = toNodes(md.renderer.render(block.tokens, md.options, env), options);
      // An empty block (a lone reference definition) still needs a node to keep its place.
      if (!nodes.length) nodes.push(document.createTextNode(""));
      for (const node of nodes) container.insertBefore(node, anchor);
      cache.push({ key: block.key, nodes });
    }
  }

  // --- Reasoning -------------------------------------------------------------------------------------------------------
  // What a reasoning model thinks, apart from its answer. The same rules are in chat/reasoning.py, which leaves
  // the thinking out of the context of later turns.
  //   <think>...</think>answer           (Qwen3, DeepSeek-R1 and most others)
  //   ...</think>answer                  (templates that open <think> in the prompt; no <think> before it)
  //   <|channel|>analysis<|message|>...<|end|><|start|>assistant<|channel|>final<|message|>answer  (gpt-oss)
  const HARMONY = /(?:<\|start\|>assistant)?<\|channel\|>(\w+)[^<]*(?:<\|constrain\|>[^<]*)?<\|message\|>/g;
  const HARMONY_END = /<\|(?:end|return|call)\|>/;

  function splitReasoning(text) {
    const source = String(text || "");
    const lead = source.search(/\S/);
    if (lead >= 0 && source.startsWith("<think>", lead)) {
      const body = source.slice(lead + 7);
      const end = body.indexOf("</think>");
      if (end === -1) return { reasoning: body.replace(/^\s+/, ""), closed: false, answer: "" };
      return { reasoning: body.slice(0, end).trim(), closed: true, answer: body.slice(end + 8).replace(/^\s+/, "") };
    }
    const close = source.indexOf("</think>");
    if (close !== -1 && source.lastIndexOf("<think>", close) === -1) {
      return { reasoning: source.slice(0, close).trim(), closed: true, answer: source.slice(close + 8).replace(/^\s+/, "") };
    }
    if (lead >= 0 && /^(?:<\|start\|>assistant)?<\|channel\|>/.test(source.slice(lead))) return splitHarmony(source.slice(lead));
    return { reasoning: null, closed: true, answer: source };
  }

  function splitHarmony(source) {
    const thoughts = [];
    let answer = "";
    let closed = true;
    const heads = Array.from(source.matchAll(HARMONY));
    heads.forEach((head, index) => {
      const start = head.index + head[0].length;
      const stop = index + 1 < heads.length ? heads[index + 1].index : source.length;
      const segment = source.slice(start, stop);
      const end = segment.search(HARMONY_END);
      const content = end === -1 ? segment : segment.slice(0, end);
      if (head[1] === "final") {
        answer += content;
      } else {
        thoughts.push(content.trim());
        closed = end !== -1 || index + 1 < heads.length;
      }
    });
    return { reasoning: thoughts.join("\n\n"), closed: closed || answer !== "", answer };
  }

  // --- Public ------------------------------------------------------------------------------------------------------------
  const caches = new WeakMap(); // container -> {answer: [...], reasoning: [...], details}
  const timings = new WeakMap(); // container -> {start, end} measured on this page while the reply streamed

  // A reply that begins streaming on this page: its thinking is timed from now.
  function startTiming(container) {
    timings.set(container, { start: performance.now(), end: null });
  }

  const format = (template, values) => String(template).replace(/%\((\w+)\)s/g, (_, key) => String(values[key] ?? ""));

  // How long the model thought: measured on this page, or worked out from the stored token count and rate
  // (the thinking's share of the characters), which the label says is an estimate.
  function reasoningSeconds(container, parts, text, options) {
    const timing = timings.get(container);
    if (timing) {
      if (parts.thinking) return { seconds: (performance.now() - timing.start) / 1000, estimated: false };
      if (timing.end === null) timing.end = performance.now();
      return { seconds: (timing.end - timing.start) / 1000, estimated: false };
    }
    const stats = options.stats || {};
    const tokens = Number(stats.tokens);
    const rate = Number(stats.tokensPerS);
    if (!(tokens > 0 && rate > 0) || !text.length) return null;
    return { seconds: (tokens * (parts.reasoning.length / text.length)) / rate, estimated: true };
  }

  function reasoningLabel(container, parts, text, options) {
    const t = options.i18n || {};
    const locale = document.documentElement.lang || undefined; // the page's language, not the browser's
    const chars = parts.reasoning.length.toLocaleString(locale);
    const time = reasoningSeconds(container, parts, text, options);
    const digits = time && time.seconds < 10 ? 1 : 0;
    const seconds = time
      ? time.seconds.toLocaleString(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits })
      : null;
    if (parts.thinking && seconds === null) {
      return format(t.reasoningThinkingLength || "Thinking… %(chars)s characters", { chars });
    }
    if (parts.thinking) return format(t.reasoningThinking || "Thinking… %(chars)s characters · %(seconds)s s", { chars, seconds });
    if (seconds === null) return format(t.reasoningLength || "Reasoning · %(chars)s characters", { chars });
    const template = time.estimated ? t.reasoningAbout || "Reasoning · %(chars)s characters · about %(seconds)s s"
      : t.reasoningDone || "Reasoning · %(chars)s characters · %(seconds)s s";
    return format(template, { chars, seconds });
  }

  // Renders a reply's text into `container` (a message body). Called again with more text, it keeps what did
  // not change: the folded thinking (and whether the reader opened it) and every finished block.
  function renderInto(container, text, options) {
    options = options || {};
    let cache = caches.get(container);
    const first = cache && (cache.details || cache.answer[0]?.nodes[0]);
    if (!cache || (first && first.parentNode !== container)) {
      // First render, or the container's content was replaced by someone else: start afresh.
      container.replaceChildren();
      cache = { answer: [], reasoning: [], details: null };
      caches.set(container, cache);
    }
    const source = String(text || "");
    const parts = splitReasoning(source);
    if (parts.reasoning !== null) {
      if (!cache.details) {
        const details = document.createElement("details");
        details.className = "reasoning";
        const summary = document.createElement("summary");
        const body = document.createElement("div");
        body.className = "reasoning-body md";
        details.append(summary, body);
        container.prepend(details);
        cache.details = details;
      }
      // Still thinking while the reply streams; a reply stopped mid-thought is done thinking too.
      parts.thinking = !parts.closed && options.streaming !== false;
      cache.details.dataset.state = parts.thinking ? "thinking" : "done";
      cache.details.querySelector("summary").textContent = reasoningLabel(container, parts, source, options);
      renderBlocks(cache.details.lastChild, parts.reasoning, cache.reasoning, options);
    } else if (cache.details) {
      cache.details.remove();
      cache.details = null;
      cache.reasoning = [];
    }
    renderBlocks(container, parts.answer, cache.answer, { ...options, after: cache.details });
    return parts;
  }

  // The whole text as a fragment, with nothing kept between calls (tests, and callers that want a copy).
  function render(text, options) {
    const box = document.createElement("div");
    renderInto(box, text, options);
    const fragment = document.createDocumentFragment();
    fragment.append(...box.childNodes);
    return fragment;
  }

  // Forget what renderInto kept for a container (its text was replaced, not extended).
  function reset(container) {
    caches.delete(container);
  }

  window.LLMSiteMarkdown = { render, renderInto, reset, startTiming, splitReasoning, safeUrl };
})();
