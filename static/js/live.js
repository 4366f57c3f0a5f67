// Shared by the scripts that keep a page current from the staff-only status view (chat:models_status):
// chat-models.js (the worker, GPUs, workers table) and downloads.js (download progress). Load it before them.
"use strict";

window.llmsiteLive = window.llmsiteLive || {
  // Fetch `url` as JSON and hand it to `handle` again and again: every `idleMs`, every `busyMs` while `handle`
  // says something is moving (returns true), every `errorMs` while the server cannot be reached, and no more
  // often than `hiddenMs` while the tab is hidden. The first request goes after `firstMs`.
  poll(url, handle, { idleMs = 5000, busyMs = 700, errorMs = 10000, hiddenMs = 15000, firstMs = 0 } = {}) {
    async function once() {
      let delay = idleMs;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.ok && (await handle(await response.json()))) delay = busyMs;
      } catch (error) {
        delay = errorMs;
      }
      setTimeout(once, document.visibilityState === "visible" ? delay : Math.max(delay, hiddenMs));
    }
    setTimeout(once, firstMs);
  },

  formatBytes(bytes) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let value = Number(bytes) || 0;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
  },
};
