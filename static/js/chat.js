// The chat page: WebSocket client (README.md, "The WebSocket protocol"), composer, message actions, settings.
// Beside it, each a concern of its own: chat-messages.js (the messages on the page and their buttons),
// chat-socket.js (the reconnecting socket), chat-attachments.js (attached text files), chat-clipboard.js (Copy).
//
// The page is rendered by the server and readable without this file. Data comes from the
// <script type="application/json" id="chat-config"> block (json_script); model text is put on the page
// only through static/js/chat-markdown.js (markdown-it, then DOMPurify; model markup is never live HTML).
"use strict";

(function () {
  const configNode = document.getElementById("chat-config");
  // chat-markdown.js, chat-messages.js, chat-socket.js, chat-attachments.js and chat-clipboard.js come first.
  if (!configNode || !window.LLMSiteMarkdown || !window.LLMSiteChatMessages || !window.LLMSiteSocket ||
      !window.LLMSiteAttachments || !window.LLMSiteClipboard) return;
  const config = JSON.parse(configNode.textContent);
  const t = config.i18n;
  const Markdown = window.LLMSiteMarkdown;
  const Attachments = window.LLMSiteAttachments;
  const Clipboard = window.LLMSiteClipboard;
  const SAMPLING_KEY = "llmsite.sampling";
  const INTEGER_OPTIONS = new Set(["top_k", "max_tokens", "seed"]);

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

  const {
    el, rawText, renderBody, setText, nearBottom, scrollToBottom, messageArticle, setId, appendMessage, addActions,
    setStats, showError, articles, findArticle,
  } = window.LLMSiteChatMessages.create({ log, t, Markdown, format });

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
  // Read in the browser and sent as part of the message (static/js/chat-attachments.js).
  const withAttachments = (text) => Attachments.withAttachments(text, state.attachments);
  const { readTextFile, sizeLabel } = Attachments;

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

  function clearAttachments() {
    state.attachments = [];
    drawAttachments();
    showAttachError("");
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

  // --- The connection (static/js/chat-socket.js): resumes a reply that was streaming ------------------------------
  const connection = window.LLMSiteSocket.create({
    path: config.wsPath,
    onStatus: setConnection,
    onOpen() {
      const resume = state.resumeId || (state.reply && state.reply.dataset.id);
      if (resume) {
        state.resetOnToken = true;
        connection.send({ type: "resume", message: Number(resume) });
      } else if (state.sendWhenUp) {
        sendMessage();
      }
    },
    onFrame(frame) {
      const handler = HANDLERS[frame.type];
      if (handler) handler(frame);
    },
    onDropped: dropped,
  });

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
        Clipboard.copyWithFeedback(button, code.textContent, t.copied);
      } else if (button.classList.contains("copy-message")) {
        Clipboard.copyWithFeedback(button, rawText.get(article) || "", t.copied);
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
