// The chat's messages on the page: each an <article> with its header, body and footer of actions; the body
// drawn from the message's text (an assistant's through static/js/chat-markdown.js, at most once a frame while it
// streams), the footer's buttons (versions, copy, edit, regenerate, continue) drawn again whenever it changes.
// chat.js creates one set of these for its log and wires the buttons' clicks.
"use strict";

window.LLMSiteChatMessages = (function () {
  function create({ log, t, Markdown, format }) {
    const byId = (id) => document.getElementById(id);
    const rawText = new WeakMap(); // <article> -> the message's text as written

    function el(tag, className, text) {
      const node = document.createElement(tag);
      if (className) node.className = className;
      if (text !== undefined) node.textContent = text;
      return node;
    }

    const dirty = new Set();
    let renderPending = false;
    let lastRenderMs = 0;

    function renderBody(article) {
      const body = article.querySelector(".msg-body");
      const text = rawText.get(article) || "";
      if (article.dataset.role === "assistant") {
        const stats = { tokens: article.dataset.tokens, tokensPerS: article.dataset.tokensPerS };
        const streaming = article.dataset.status === "streaming";
        Markdown.renderInto(body, text, { copyLabel: t.copyCode, imageLabel: t.image, i18n: t, stats, streaming });
        body.classList.add("md");
      } else {
        body.textContent = text;
      }
    }

    // Streaming re-renders a reply at most once per frame, however many tokens arrive; a reply so long that
    // rendering it takes a while is rendered less often, so typing and scrolling stay smooth.
    function scheduleRender(article) {
      dirty.add(article);
      if (renderPending) return;
      renderPending = true;
      const wait = lastRenderMs > 8 ? Math.min(1000, lastRenderMs * 4) : 0;
      setTimeout(() => requestAnimationFrame(flushRenders), wait);
    }

    function flushRenders() {
      const follow = nearBottom();
      const started = performance.now();
      renderPending = false;
      for (const item of dirty) renderBody(item);
      dirty.clear();
      lastRenderMs = performance.now() - started;
      if (follow) scrollToBottom();
    }

    function setText(article, text) {
      rawText.set(article, text);
      scheduleRender(article);
    }

    function nearBottom() {
      return log.scrollHeight - log.scrollTop - log.clientHeight < 120;
    }

    function scrollToBottom() {
      log.scrollTop = log.scrollHeight;
    }

    function messageArticle(role, id) {
      const article = el("article", `msg msg-${role}`);
      article.dataset.role = role;
      article.dataset.status = role === "assistant" ? "streaming" : "complete";
      if (id) setId(article, id);
      const head = el("header", "msg-head");
      head.appendChild(el("span", "msg-role", role === "user" ? t.user : t.assistant));
      if (role === "assistant") head.append(" ", el("span", "msg-model muted"));
      const foot = el("footer", "msg-foot");
      foot.appendChild(el("span", "msg-stats muted"));
      article.append(head, el("div", "msg-body"), foot);
      addActions(article);
      return article;
    }

    function setId(article, id) {
      article.dataset.id = String(id);
      article.id = `msg-${id}`;
    }

    function appendMessage(role, text) {
      byId("chat-empty")?.remove();
      const article = messageArticle(role);
      log.appendChild(article);
      setText(article, text);
      return article;
    }

    // The buttons under a message: versions (‹ 1/2 ›) when its turn has several, copy, edit or regenerate, and
    // Continue for a reply that stopped at the length limit. Drawn again whenever the message changes.
    function addActions(article) {
      const foot = article.querySelector(".msg-foot");
      foot.querySelector(".msg-actions")?.remove();
      foot.querySelector(".msg-versions")?.remove();
      const actions = el("span", "msg-actions");
      const button = (className, label, parent = actions) => {
        const node = el("button", className, label);
        node.type = "button";
        parent.appendChild(node);
        return node;
      };
      const version = Number(article.dataset.version || 1);
      const versions = Number(article.dataset.versions || 1);
      if (versions > 1) {
        const nav = el("span", "msg-versions");
        nav.setAttribute("role", "group");
        nav.setAttribute("aria-label", format(t.versionOf, { version, versions }));
        const previous = button("version-prev", "‹", nav);
        previous.setAttribute("aria-label", t.previousVersion);
        previous.disabled = version <= 1;
        nav.appendChild(el("span", "version-label", `${version}/${versions}`));
        const next = button("version-next", "›", nav);
        next.setAttribute("aria-label", t.nextVersion);
        next.disabled = version >= versions;
        foot.appendChild(nav);
      }
      button("copy-message", t.copy);
      if (article.dataset.role === "user") button("edit-message", t.edit);
      if (article.dataset.role === "assistant") {
        if (article.dataset.finishReason === "length") button("continue-message", t.continue);
        button("regenerate-message", t.regenerate);
      }
      foot.appendChild(actions);
    }

    function setStats(article, status, stats, finishReason) {
      article.dataset.status = status;
      article.classList.remove("pending");
      if (finishReason === "length" && status === "complete") article.dataset.finishReason = "length";
      else delete article.dataset.finishReason;
      const parts = [];
      if (article.dataset.finishReason === "length") parts.push(t.lengthLimit);
      if (status === "stopped") parts.push(t.stopped);
      if (status === "error") parts.push(t.error);
      if (stats && stats.tokens_per_s != null) {
        parts.push(format(t.stats, {
          tokens: stats.tokens ?? "?",
          tps: Number(stats.tokens_per_s).toFixed(1),
          ttft: stats.ttft_ms != null ? Math.round(stats.ttft_ms) : "?",
        }));
      }
      article.querySelector(".msg-stats").textContent = parts.join(" · ");
    }

    function showError(article, text) {
      let node = article.querySelector(".msg-error");
      if (!node) {
        node = el("p", "msg-error");
        node.setAttribute("role", "alert");
        article.querySelector(".msg-foot").before(node);
      }
      node.textContent = text;
    }

    function articles() {
      return Array.from(log.querySelectorAll("article.msg"));
    }

    function findArticle(id) {
      return id == null ? null : byId(`msg-${id}`);
    }

    return { el, rawText, renderBody, setText, nearBottom, scrollToBottom, messageArticle, setId, appendMessage,
             addActions, setStats, showError, articles, findArticle };
  }

  return { create };
})();
