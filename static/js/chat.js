// The chat page: WebSocket client (README.md, "The WebSocket protocol"), composer, message actions, settings.
//
// The page is rendered by the server and readable without this file. Data comes from the
// <script type="application/json" id="chat-config"> block (json_script); model text is put on the page
// only through static/js/chat-markdown.js (markdown-it, then DOMPurify; model markup is never live HTML).
"use strict";

(function () {
  const configNode = document.getElementById("chat-config");
  if (!configNode || !window.LLMSiteMarkdown) return;
  const config = JSON.parse(configNode.textContent);
  const t = config.i18n;
  const Markdown = window.LLMSiteMarkdown;
  const SAMPLING_KEY = "llmsite.sampling";
  const INTEGER_OPTIONS = new Set(["top_k", "max_tokens", "seed"]);
  const MAX_BACKOFF_MS = 30000;

  const byId = (id) => document.getElementById(id);
  const log = byId("chat-log");
  const composer = byId("composer");
  const input = byId("composer-input");
  const sendButton = byId("send-button");
  const stopButton = byId("stop-button");
  const queueState = byId("queue-state");
  const connectionState = byId("connection-state");
  const modelState = byId("model-state");
  const modelProgress = byId("model-progress");
  const systemPrompt = document.querySelector(".system-prompt-form textarea");
  const samplingInputs = Array.from(document.querySelectorAll("[data-option]"));
  const attachInput = byId("attach-input");
  const attachList = byId("attachments");
  const attachError = byId("attach-error");
  const presetSelect = byId("preset-select");
  const CHARS_PER_TOKEN = 4; // a rough count for the check before sending; the worker counts exactly

  const format = (template, values) => template.replace(/%\((\w+)\)s/g, (_, key) => String(values[key] ?? ""));

  const state = {
    conversation: config.conversation,
    reply: null,          // the assistant <article> being written (or waiting) for this page
    resumeId: null,       // the reply to ask for again after (re)connecting
    resetOnToken: false,  // after a resume, the first text we get replaces what the page has
    connected: false,
    sendWhenUp: false,    // Enter was pressed before the socket was up: send once it is
    nCtx: (config.model && config.model.n_ctx) || null,
    attachments: [],      // {name, text, size} of the files attached to the next message
    continuing: null,     // the reply a `continue` was sent for, until the server accepts or refuses it
  };
  const rawText = new WeakMap(); // <article> -> the message's text as written

  // --- Messages on the page --------------------------------------------------------------------------------------
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

  // Regenerate is offered on every stored reply (an earlier one gets a new version, and the turns after it stay
  // with the old version's branch); Continue on the last reply only; neither while a reply is being written.
  function updateControls() {
    const busy = state.reply !== null;
    sendButton.disabled = busy || !state.connected;
    stopButton.hidden = !busy;
    log.setAttribute("aria-busy", String(busy));
    const all = articles();
    const lastAssistant = all.filter((a) => a.dataset.role === "assistant" && a.dataset.id).pop();
    for (const article of all) {
      const regenerate = article.querySelector(".regenerate-message");
      if (regenerate) regenerate.hidden = busy || !article.dataset.id;
      const more = article.querySelector(".continue-message");
      if (more) more.hidden = busy || article !== lastAssistant;
      const edit = article.querySelector(".edit-message");
      if (edit) edit.hidden = busy || !article.dataset.id;
      for (const step of article.querySelectorAll(".msg-versions button")) {
        step.disabled = busy || (step.classList.contains("version-prev")
          ? Number(article.dataset.version) <= 1 : Number(article.dataset.version) >= Number(article.dataset.versions));
      }
    }
  }

  // --- Sending ---------------------------------------------------------------------------------------------------------
  function currentOptions() {
    const options = {};
    for (const field of samplingInputs) {
      const value = field.value.trim();
      const { rangeOverflow, rangeUnderflow, badInput } = field.validity;
      if (value === "" || rangeOverflow || rangeUnderflow || badInput) continue;
      const number = INTEGER_OPTIONS.has(field.dataset.option) ? parseInt(value, 10) : parseFloat(value);
      if (Number.isFinite(number)) options[field.dataset.option] = number;
    }
    // Always sent: an emptied prompt clears the conversation's saved one.
    if (systemPrompt) options.system = systemPrompt.value.trim();
    return options;
  }

  function startReply() {
    const article = appendMessage("assistant", "");
    article.classList.add("pending");
    state.reply = article;
    state.resumeId = null;
    queueState.textContent = "";
    updateControls();
    scrollToBottom();
    return article;
  }

  function sendFrame(frame) {
    if (!connection.send(frame)) {
      connectionState.textContent = t.connecting;
      return false;
    }
    return true;
  }

  function sendMessage() {
    const content = withAttachments(input.value.trim());
    if (!content || state.reply) return;
    if (content.length > config.maxMessageChars) {
      showAttachError(format(t.messageTooLong, { max: config.maxMessageChars }));
      return;
    }
    if (!state.connected) {
      state.sendWhenUp = true; // typed before the socket was up: kept, and sent as soon as it is
      connectionState.textContent = t.connecting;
      return;
    }
    const frame = { type: "send", conversation: state.conversation, content, options: currentOptions() };
    // A conversation begun on this page is written by the model chosen beside "New conversation".
    const modelSelect = byId("new-chat-model");
    if (!state.conversation && modelSelect) frame.model = modelSelect.value;
    if (!sendFrame(frame)) return;
    state.sendWhenUp = false;
    input.value = "";
    autosize();
    clearAttachments();
    const userArticle = appendMessage("user", content);
    userArticle.classList.add("pending");
    startReply();
  }

  // --- Attached text files ---------------------------------------------------------------------------------
  // Read in the browser and sent as part of the message (text, never HTML), each under its name in a fence
  // longer than any run of backticks inside it.
  function withAttachments(text) {
    const parts = text ? [text] : [];
    for (const file of state.attachments) {
      const longest = Math.max(2, ...Array.from(file.text.matchAll(/`+/g), (m) => m[0].length));
      const fence = "`".repeat(longest + 1);
      const language = (file.name.match(/\.([A-Za-z0-9]+)$/) || ["", ""])[1].toLowerCase();
      parts.push(`**${file.name}**\n\n${fence}${language}\n${file.text.replace(/\n$/, "")}\n${fence}`);
    }
    return parts.join("\n\n");
  }

  function showAttachError(text) {
    attachError.textContent = text;
    attachError.hidden = !text;
  }

  function drawAttachments() {
    attachList.replaceChildren();
    state.attachments.forEach((file, index) => {
      const item = el("li", "attachment");
      item.append(el("span", "attachment-name", file.name),
        el("span", "attachment-size muted", sizeLabel(file.size)));
      const remove = el("button", "attachment-remove secondary button-small", "×");
      remove.type = "button";
      remove.dataset.index = String(index);
      remove.setAttribute("aria-label", format(t.removeFile, { name: file.name }));
      item.appendChild(remove);
      attachList.appendChild(item);
    });
    attachList.hidden = state.attachments.length === 0;
  }

  function sizeLabel(bytes) {
    return bytes < 1024 ? `${bytes} B` : `${Math.round(bytes / 1024).toLocaleString()} KB`;
  }

  function clearAttachments() {
    state.attachments = [];
    drawAttachments();
    showAttachError("");
  }

  async function readTextFile(file) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    let text;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch (error) {
      return null;
    }
    return text.includes("\u0000") ? null : text.replace(/^\uFEFF/, "");
  }

  async function attachFiles(files) {
    const refused = [];
    for (const file of files) {
      const text = await readTextFile(file);
      if (text === null) {
        refused.push(format(t.fileNotText, { name: file.name }));
        continue;
      }
      const tokens = Math.round((withAttachments(input.value.trim()).length + text.length) / CHARS_PER_TOKEN);
      if (state.nCtx && tokens >= state.nCtx) {
        refused.push(format(t.fileTooLong, { name: file.name, tokens: tokens.toLocaleString(), n_ctx: state.nCtx.toLocaleString() }));
        continue;
      }
      state.attachments.push({ name: file.name, text, size: file.size });
    }
    drawAttachments();
    showAttachError(refused.join(" "));
    input.focus();
  }

  function continueReply(article) {
    if (state.reply || !article.dataset.id) return;
    const frame = { type: "continue", message: Number(article.dataset.id), options: currentOptions() };
    if (!sendFrame(frame)) return;
    state.continuing = { article, stats: article.querySelector(".msg-stats").textContent };
    delete article.dataset.finishReason;
    article.dataset.status = "streaming";
    article.querySelector(".msg-stats").textContent = "";
    addActions(article);
    state.reply = article;
    state.resumeId = null;
    queueState.textContent = "";
    updateControls();
  }

  function showVersion(article, step) {
    if (state.reply || !article.dataset.id) return;
    const version = Number(article.dataset.version || 1) + step;
    if (version < 1 || version > Number(article.dataset.versions || 1)) return;
    sendFrame({ type: "version", message: Number(article.dataset.id), version });
  }

  // The conversation as the server shows it after another version was picked: every message drawn again.
  function onPath(frame) {
    if (frame.conversation !== state.conversation) return;
    log.replaceChildren();
    for (const message of frame.messages) {
      const article = messageArticle(message.role, message.id);
      article.dataset.version = String(message.version);
      article.dataset.versions = String(message.versions);
      log.appendChild(article);
      rawText.set(article, message.content);
      renderBody(article);
      if (message.role === "assistant") setStats(article, message.status, message.stats, message.finish_reason);
      if (message.error) showError(article, message.error);
      addActions(article);
      if (message.status === "streaming" && message.role === "assistant") {
        state.reply = article;
        state.resetOnToken = true;
        sendFrame({ type: "resume", message: message.id });
      }
    }
    updateControls();
  }

  function regenerate(article) {
    if (state.reply || !article.dataset.id) return;
    const frame = { type: "regenerate", message: Number(article.dataset.id), options: currentOptions() };
    if (!sendFrame(frame)) return;
    // The new version takes the reply's place; the turns after it belong to the old version's branch (‹ › shows
    // them again), so they leave the page with it.
    removeFrom(article);
    startReply();
  }

  function removeFrom(article) {
    while (article.nextElementSibling) article.nextElementSibling.remove();
    article.remove();
  }

  function editMessage(article) {
    if (state.reply || article.querySelector(".msg-edit")) return;
    const body = article.querySelector(".msg-body");
    const form = el("form", "msg-edit");
    const area = el("textarea");
    area.value = rawText.get(article) || "";
    const actions = el("div", "msg-edit-actions");
    const save = el("button", "", t.saveSend);
    save.type = "submit";
    const cancel = el("button", "secondary", t.cancel);
    cancel.type = "button";
    actions.append(save, cancel);
    form.append(area, actions);
    body.hidden = true;
    body.after(form);
    area.focus();
    const close = () => {
      form.remove();
      body.hidden = false;
    };
    cancel.addEventListener("click", close);
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const content = area.value.trim();
      if (!content || state.reply) return;
      const frame = { type: "edit", message: Number(article.dataset.id), content, options: currentOptions() };
      if (!sendFrame(frame)) return;
      close();
      // Everything after the edited message is replaced by the new reply.
      while (article.nextElementSibling) article.nextElementSibling.remove();
      setText(article, content);
      article.classList.add("pending"); // a new version of the question: its id comes with `accepted`
      startReply();
    });
  }

  function stop() {
    sendFrame({ type: "stop" });
  }

  // --- Frames from the server ---------------------------------------------------------------------------------------------
  function findArticle(id) {
    return id == null ? null : byId(`msg-${id}`);
  }

  function onAccepted(frame) {
    if (frame.conversation != null && state.conversation !== frame.conversation) {
      state.conversation = frame.conversation;
      const url = config.conversationUrl.replace(/\/0\/$/, `/${frame.conversation}/`);
      history.replaceState(null, "", url);
      addToSidebar(frame.conversation, url, frame.title);
      linkConversation(frame.conversation);
    }
    state.continuing = null;
    const reply = state.reply || findArticle(frame.message);
    if (!reply) return;
    const modelLabel = reply.querySelector(".msg-model");
    if (modelLabel && frame.model) modelLabel.textContent = frame.model;
    if (reply !== state.reply) return;
    if (frame.message != null) setId(reply, frame.message);
    const pendingUser = log.querySelector("article.msg-user.pending");
    if (pendingUser) {
      pendingUser.classList.remove("pending");
      if (frame.user_message != null) setId(pendingUser, frame.user_message);
    }
    // A regenerate or an edit added a version: to the reply, or to the question before it.
    const versioned = frame.user_message != null ? pendingUser : reply;
    if (versioned && frame.versions != null) {
      versioned.dataset.version = String(frame.version);
      versioned.dataset.versions = String(frame.versions);
      addActions(versioned);
    }
    if (pendingUser && frame.versions == null) addActions(pendingUser);
    updateControls();
  }

  // The new conversation's sidebar entry, with its ⋯ menu (rename, delete), from the page's <template>.
  function addToSidebar(id, url, serverTitle) {
    const list = byId("conversation-list");
    const template = byId("conversation-item-template");
    if (!list || !template || list.querySelector(`[data-id="${id}"]`)) return;
    list.querySelector(".conversation-none")?.remove();
    for (const item of list.querySelectorAll(".current")) {
      item.classList.remove("current");
      item.querySelector("[aria-current]")?.removeAttribute("aria-current");
    }
    const title = serverTitle || t.newConversation;
    const item = template.content.firstElementChild.cloneNode(true);
    item.classList.add("current");
    item.dataset.id = String(id);
    const anchor = item.querySelector(".conversation-link");
    anchor.textContent = title;
    anchor.href = url;
    anchor.setAttribute("aria-current", "page");
    for (const form of item.querySelectorAll("form")) form.action = form.getAttribute("action").replace("/0/", `/${id}/`);
    const field = item.querySelector("input[name=title]");
    field.id = `rename-${id}`;
    field.value = title;
    item.querySelector(`label[for="rename-0"]`)?.setAttribute("for", field.id);
    item.querySelector(".conversation-menu summary .visually-hidden").textContent = format(t.renameOrDelete, { title });
    item.querySelector(".delete-form").dataset.confirm = format(t.deleteQuestion, { title });
    list.prepend(item);
    const heading = byId("chat-title");
    if (heading) heading.textContent = title;
    document.title = `${title} · ${document.title.split(" · ").slice(-2).join(" · ")}`;
  }

  // A conversation that began on this page gets what the server renders for one: export links, and a
  // system prompt form that saves to it.
  function linkConversation(id) {
    const withId = (template) => template.replace("/0/", `/${id}/`);
    const promptForm = document.querySelector(".system-prompt-form");
    if (promptForm) {
      promptForm.action = withId(config.systemPromptUrl);
      const button = promptForm.querySelector("button[type=submit]");
      if (button) button.textContent = t.save;
    }
    const head = document.querySelector(".chat-head");
    if (!head || head.querySelector(".chat-export")) return;
    const nav = el("nav", "chat-export");
    nav.setAttribute("aria-label", t.export);
    for (const [kind, label, id] of [["md", t.markdown, "export-md"], ["json", "JSON", "export-json"]]) {
      const anchor = el("a", "button secondary button-small", label);
      anchor.href = withId(config.exportUrls[kind]);
      anchor.id = id;
      anchor.setAttribute("download", "");
      nav.appendChild(anchor);
    }
    head.appendChild(nav);
  }

  function replyFor(frame) {
    if (state.reply && (frame.message == null || state.reply.dataset.id === String(frame.message))) return state.reply;
    return null;
  }

  function onToken(frame) {
    const article = replyFor(frame) || findArticle(frame.message);
    if (!article) return;
    queueState.textContent = "";
    article.classList.remove("pending");
    // A reply that starts on this page: its thinking (if the model reasons) is timed from its first token.
    if (!rawText.get(article)) Markdown.startTiming(article.querySelector(".msg-body"));
    const before = state.resetOnToken && article === state.reply ? "" : rawText.get(article) || "";
    state.resetOnToken = false;
    setText(article, before + frame.text);
  }

  function onDone(frame) {
    const article = replyFor(frame) || findArticle(frame.message);
    if (!article) return;
    if (typeof frame.content === "string") setText(article, frame.content);
    setStats(article, frame.status || "complete", frame.stats, frame.finish_reason);
    addActions(article);
    if (article === state.reply) finishReply();
  }

  function finishReply() {
    state.reply = null;
    state.resumeId = null;
    state.resetOnToken = false;
    queueState.textContent = "";
    log.querySelector("article.msg-user.pending")?.classList.remove("pending");
    updateControls();
  }

  // An error names its reply in `reply`; one without it answers our last frame (a refused send, a stop
  // with nothing to stop), and fails the reply only if the server never accepted it.
  function onError(frame) {
    const text = frame.message || frame.code || t.error;
    const continuing = state.continuing;
    if (frame.reply == null && continuing) {
      // The server refused to continue (a limit, or the reply changed): it is as it was, and the page says why.
      state.continuing = null;
      const { article: cut, stats } = continuing;
      cut.dataset.status = "complete";
      cut.dataset.finishReason = "length";
      cut.querySelector(".msg-stats").textContent = stats;
      addActions(cut);
      finishReply();
      queueState.textContent = text;
      return;
    }
    const article = frame.reply != null ? findArticle(frame.reply) : state.reply && !state.reply.dataset.id ? state.reply : null;
    if (article) {
      showError(article, text);
      setStats(article, "error");
      if (article === state.reply) finishReply();
    } else {
      queueState.textContent = text;
    }
  }

  function onModel(frame) {
    // The catalog's name the page was given for this file, else the GGUF's general.name, never a bare file name
    // when either is known.
    const model = (config.modelNames || {})[frame.model_file] || frame.model_name || frame.model_file || frame.model || "";
    if (frame.n_ctx) state.nCtx = frame.n_ctx;
    const stateName = frame.state || "";
    modelState.dataset.state = stateName;
    if (stateName === "loading") {
      modelState.textContent = format(t.modelLoading, { model });
    } else if (stateName === "error") {
      modelState.textContent = format(t.modelError, { error: frame.error || frame.message || "" });
    } else if (model) {
      modelState.textContent = format(t.modelReady, { model });
    } else {
      modelState.textContent = t.modelNone;
    }
    if (modelProgress) {
      modelProgress.hidden = stateName !== "loading";
      if (typeof frame.progress === "number") modelProgress.value = Math.max(0, Math.min(1, frame.progress));
    }
  }

  const HANDLERS = {
    accepted: onAccepted,
    queued: (frame) => {
      if (frame.model && typeof frame.progress === "number") {
        queueState.textContent = format(t.waitingForModel, { model: frame.model, percent: Math.round(frame.progress * 100) });
      } else {
        queueState.textContent = format(t.queued, { position: frame.position });
      }
    },
    token: onToken,
    done: onDone,
    error: onError,
    model: onModel,
    path: onPath,
  };

  // --- The connection: reconnects with exponential back-off, resumes a reply that was streaming ------------------
  const connection = {
    socket: null,
    attempt: 0,
    timer: null,
    url() {
      return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${config.wsPath}`;
    },
    open() {
      clearTimeout(this.timer);
      this.timer = null;
      if (this.socket) return;
      setConnection("connecting");
      let socket;
      try {
        socket = new WebSocket(this.url());
      } catch (error) {
        this.retry();
        return;
      }
      this.socket = socket;
      socket.addEventListener("open", () => {
        this.attempt = 0;
        setConnection("up");
        const resume = state.resumeId || (state.reply && state.reply.dataset.id);
        if (resume) {
          state.resetOnToken = true;
          socket.send(JSON.stringify({ type: "resume", message: Number(resume) }));
        } else if (state.sendWhenUp) {
          sendMessage();
        }
      });
      socket.addEventListener("message", (event) => {
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch (error) {
          return;
        }
        const handler = frame && HANDLERS[frame.type];
        if (handler) handler(frame);
      });
      socket.addEventListener("close", () => {
        if (this.socket !== socket) return;
        this.socket = null;
        dropped();
        this.retry();
      });
    },
    retry() {
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
      this.attempt += 1;
      setConnection("down", Math.ceil(delay / 1000));
      this.timer = setTimeout(() => this.open(), delay);
    },
    now() {
      // The network came back or the tab is visible again: do not wait out the back-off.
      if (!this.socket && this.timer) this.open();
    },
    send(frame) {
      if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
      this.socket.send(JSON.stringify(frame));
      return true;
    },
  };

  // A reply that the server had accepted is asked for again; one it never acknowledged is reported.
  function dropped() {
    const reply = state.reply;
    if (!reply) return;
    if (reply.dataset.id) {
      state.resumeId = reply.dataset.id;
    } else {
      showError(reply, t.connectionLost);
      setStats(reply, "error");
      finishReply();
    }
  }

  function setConnection(status, seconds) {
    state.connected = status === "up";
    connectionState.dataset.state = status;
    connectionState.textContent = {
      connecting: t.connecting,
      up: t.connected,
      down: format(t.reconnecting, { seconds }),
    }[status];
    if (status === "up") input.disabled = false;
    updateControls();
  }

  // --- Copying ---------------------------------------------------------------------------------------------------------------
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (error) {
        // fall through: permissions can refuse the async clipboard
      }
    }
    // Plain http on a LAN address is not a secure context: the old way still works there.
    const helper = el("textarea", "clipboard-helper");
    helper.value = text;
    helper.setAttribute("readonly", "");
    document.body.appendChild(helper);
    helper.select();
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    helper.remove();
    return copied;
  }

  async function copyWithFeedback(button, text) {
    const label = button.textContent;
    if (await copyText(text)) {
      button.textContent = t.copied;
      setTimeout(() => {
        button.textContent = label;
      }, 1500);
    }
  }

  // --- Settings panel: sampling kept in this browser -------------------------------------------------------------------
  function restoreSampling() {
    let saved = {};
    try {
      saved = JSON.parse(localStorage.getItem(SAMPLING_KEY) || "{}") || {};
    } catch (error) {
      saved = {};
    }
    for (const field of samplingInputs) {
      const value = saved[field.dataset.option];
      if (value !== undefined && value !== null) field.value = String(value);
    }
  }

  function saveSampling() {
    const values = {};
    for (const field of samplingInputs) if (field.value.trim() !== "") values[field.dataset.option] = field.value.trim();
    try {
      localStorage.setItem(SAMPLING_KEY, JSON.stringify(values));
    } catch (error) {
      // private browsing may refuse storage; the settings still apply to this page
    }
  }

  // --- Presets: a system prompt and sampling settings, picked in the settings panel ----------------------------------
  function applyPreset(preset, announce = true) {
    if (!preset) return;
    if (systemPrompt && announce) systemPrompt.value = preset.system_prompt;
    for (const field of samplingInputs) {
      const value = preset.options[field.dataset.option];
      field.value = value === undefined || value === null ? "" : String(value);
    }
    saveSampling();
    if (presetSelect) presetSelect.value = String(preset.id);
    if (announce) byId("preset-state").textContent = format(t.presetApplied, { name: preset.name });
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = `${input.scrollHeight + 2}px`;
  }

  // --- Wiring -----------------------------------------------------------------------------------------------------------------
  function init() {
    for (const article of articles()) {
      const body = article.querySelector(".msg-body");
      rawText.set(article, body.textContent);
      if (article.dataset.role === "assistant") renderBody(article);
      addActions(article);
    }
    if (input.value) autosize(); // typed before this script ran: kept
    for (const id of config.streaming || []) {
      const article = findArticle(id);
      if (article) {
        state.reply = article;
        state.resumeId = String(id);
      }
    }
    if (config.model && config.model.state) onModel(config.model);

    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      sendMessage();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendMessage();
      }
    });
    input.addEventListener("input", autosize);
    stopButton.addEventListener("click", stop);

    log.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      const article = button.closest("article.msg");
      if (button.classList.contains("copy-code")) {
        const code = button.closest(".code-block").querySelector("code");
        copyWithFeedback(button, code.textContent);
      } else if (button.classList.contains("copy-message")) {
        copyWithFeedback(button, rawText.get(article) || "");
      } else if (button.classList.contains("edit-message")) {
        editMessage(article);
      } else if (button.classList.contains("regenerate-message")) {
        regenerate(article);
      } else if (button.classList.contains("continue-message")) {
        continueReply(article);
      } else if (button.classList.contains("version-prev")) {
        showVersion(article, -1);
      } else if (button.classList.contains("version-next")) {
        showVersion(article, 1);
      }
    });

    attachInput?.addEventListener("change", async () => {
      await attachFiles(Array.from(attachInput.files || []));
      attachInput.value = ""; // the same file can be attached again
    });
    attachList?.addEventListener("click", (event) => {
      const remove = event.target.closest(".attachment-remove");
      if (!remove) return;
      state.attachments.splice(Number(remove.dataset.index), 1);
      drawAttachments();
      showAttachError("");
    });

    restoreSampling();
    for (const field of samplingInputs) field.addEventListener("change", saveSampling);
    const presets = config.presets || [];
    presetSelect?.addEventListener("change", () => {
      applyPreset(presets.find((preset) => String(preset.id) === presetSelect.value));
    });
    // A conversation with nothing in it yet starts with the default preset's sampling (its prompt is on the page).
    const fallback = presets.find((preset) => preset.is_default);
    if (fallback && articles().length === 0) applyPreset(fallback, false);  // sampling only
    const reset = byId("sampling-reset");
    if (reset) {
      reset.hidden = false;
      reset.addEventListener("click", () => {
        for (const field of samplingInputs) field.value = "";
        saveSampling();
      });
    }

    // Delegated: the sidebar entry of a conversation begun on this page asks too.
    document.addEventListener("submit", (event) => {
      const form = event.target.closest("form[data-confirm]");
      if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
    });

    window.addEventListener("online", () => connection.now());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") connection.now();
    });

    updateControls();
    scrollToBottom();
    connection.open();
    input.focus();
  }

  init();
})();
