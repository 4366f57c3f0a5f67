// The Models page: keeps the worker's state, the load progress, the GPUs' memory and (with Redis) the
// workers table current.
// Polls the staff-only JSON view (chat:models_status) through static/js/live.js; the page itself works without
// this file.
"use strict";

(function () {
  const configNode = document.getElementById("models-config");
  if (!configNode) return;
  const config = JSON.parse(configNode.textContent);
  const byId = (id) => document.getElementById(id);
  let lastState = config.worker && config.worker.state;
  const { poll, formatBytes } = window.llmsiteLive; // static/js/live.js

  function show(worker, gpus) {
    const stateNode = byId("worker-state");
    stateNode.textContent = worker.state || "?";
    stateNode.dataset.state = worker.state || "";
    byId("worker-model").textContent = worker.model_file || "—";
    const layers = worker.n_gpu_layers;
    byId("worker-layers").textContent =
      layers === null || layers === undefined || layers === "" ? "—" : worker.n_layers ? `${layers} / ${worker.n_layers}` : String(layers);
    byId("worker-ctx").textContent = worker.n_ctx || "—";
    byId("worker-queue").textContent = worker.queue_length || 0;
    const slots = byId("worker-slots");
    if (slots) {
      const auto = worker.parallel_auto ? ` (${slots.dataset.autoLabel || "auto"})` : "";
      slots.textContent = `${worker.running || 0} / ${worker.parallel || 1}${auto}`;
    }
    const cached = byId("worker-cached");
    if (cached) cached.textContent = (worker.cached_conversations || []).length;
    const kv = byId("worker-kv");
    if (kv) kv.textContent = worker.kv_bytes ? formatBytes(worker.kv_bytes) : "—";
    const progress = byId("worker-progress");
    progress.hidden = worker.state !== "loading";
    if (typeof worker.progress === "number") progress.value = worker.progress;
    const error = byId("worker-error");
    error.hidden = !worker.error;
    error.textContent = worker.error || "";
    for (const gpu of gpus) {
      const row = document.querySelector(`.gpu[data-index="${gpu.index}"]`);
      if (!row) continue;
      row.querySelector(".gpu-used").textContent = formatBytes(gpu.vram_used_bytes);
      const meter = row.querySelector("meter");
      meter.max = gpu.vram_total_bytes;
      meter.value = gpu.vram_used_bytes;
    }
    for (const row of document.querySelectorAll("tr.model-row")) {
      const loaded = Boolean(worker.model_file) && row.dataset.file === worker.model_file;
      row.classList.toggle("loaded", loaded);
      const badge = row.querySelector(".loaded-badge");
      if (badge) badge.hidden = !loaded;
    }
    lastState = worker.state;
  }

  // With Redis, the workers table comes from the server as HTML (the same template, escaped there).
  async function refreshWorkers() {
    const box = byId("workers-table");
    if (!config.workersUrl || !box) return;
    const response = await fetch(config.workersUrl, { credentials: "same-origin" });
    if (response.ok) box.innerHTML = await response.text();
  }

  poll(config.statusUrl, async (data) => {
    show(data.worker || {}, data.gpus || []);
    await refreshWorkers();
    return Boolean(data.worker && data.worker.state === "loading");
  }, { idleMs: config.workersUrl ? 2000 : 5000, firstMs: lastState === "loading" ? 500 : 3000 });
})();
