// Download progress, live: on the Models page (rows with data-download-id) and on advisor answers (blocks
// with data-download-file). Polls the staff-only status view (chat:models_status), which lists the downloads,
// through static/js/live.js.
// Text goes in with textContent only: file names and errors are never HTML.
"use strict";

(function () {
  if (window.llmsiteDownloads) return; // the answer page includes this once per row
  window.llmsiteDownloads = true;

  const panelConfig = document.getElementById("downloads-config");
  const config = panelConfig ? JSON.parse(panelConfig.textContent) : {};
  const firstBlock = document.querySelector(".get-model[data-status-url]");
  const statusUrl = config.statusUrl || (firstBlock && firstBlock.dataset.statusUrl);
  if (!statusUrl) return;
  const ACTIVE = new Set(["queued", "running", "verifying"]);
  const seen = new Map(); // id -> state, to notice a download that ends or starts elsewhere
  const { poll, formatBytes } = window.llmsiteLive; // static/js/live.js

  function formatSeconds(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 60) return `${seconds} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function describe(d) {
    const parts = [];
    if (d.total_bytes) parts.push(`${formatBytes(d.done_bytes)} / ${formatBytes(d.total_bytes)}`);
    if (d.state === "running" && d.bytes_per_s) parts.push(`${formatBytes(d.bytes_per_s)}/s`);
    if (d.state === "running" && d.seconds_left !== null) parts.push(`${formatSeconds(d.seconds_left)} left`);
    return parts.join(" · ");
  }

  function paint(node, d) {
    const active = ACTIVE.has(d.state);
    node.dataset.state = d.state;
    const bar = node.querySelector(".download-bar");
    if (bar) {
      bar.max = d.total_bytes || 1;
      bar.value = d.done_bytes || 0;
      bar.hidden = !active;
    }
    const state = node.querySelector(".download-state");
    if (state) state.textContent = d.state_label || d.state;
    const text = node.querySelector(".download-text");
    if (text) text.textContent = describe(d);
    const error = node.querySelector(".download-error");
    if (error) {
      error.hidden = !d.error;
      error.textContent = d.error || "";
    }
    const cancel = node.querySelector(".download-cancel");
    if (cancel) cancel.hidden = !active;
  }

  function show(downloads) {
    let reload = false;
    for (const d of downloads) {
      const before = seen.get(d.id);
      if (config.reloadOnDone && before !== undefined && before !== d.state && d.state === "done") reload = true;
      if (config.reloadOnDone && before === undefined && seen.size && !document.querySelector(`[data-download-id="${d.id}"]`)) reload = true;
      seen.set(d.id, d.state);
      const row = document.querySelector(`tr.download-row[data-download-id="${d.id}"]`);
      if (row) paint(row, d);
    }
    // Answer rows: the newest download of each file (the list is newest first).
    for (const block of document.querySelectorAll(".get-model[data-download-file]")) {
      const d = downloads.find((item) => item.file_name === block.dataset.downloadFile);
      if (!d) continue;
      const live = block.querySelector(".download-live");
      const getForm = block.querySelector(".get-model-form");
      const load = block.querySelector(".download-load");
      live.hidden = d.state === "cancelled";
      paint(live, d);
      if (getForm) getForm.hidden = ACTIVE.has(d.state) || d.state === "done";
      if (load) load.hidden = d.state !== "done";
    }
    if (reload && !document.activeElement.closest("form")) window.location.reload();
    return downloads.some((d) => ACTIVE.has(d.state));
  }

  poll(statusUrl, (data) => show(data.downloads || []));
})();
