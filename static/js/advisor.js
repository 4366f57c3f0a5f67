// The advisor's enhancements: VRAM from the GPU, this browser's GPU as a suggestion, copy link.
// Every page works without this file.
"use strict";

(() => {
  const sizesNode = document.getElementById("gpu-sizes");
  const gpuSizes = sizesNode ? JSON.parse(sizesNode.textContent) : {};
  const gpuSelect = document.getElementById("id_gpu");
  const vramInput = document.getElementById("id_vram_gib");

  // A search box narrows the long GPU list (the plain <select> still works without JavaScript).
  const filterInput = document.getElementById("gpu-filter");
  if (gpuSelect && filterInput) {
    filterInput.hidden = false;
    filterInput.addEventListener("input", () => {
      const words = filterInput.value.toLowerCase().split(/\s+/).filter(Boolean);
      let firstMatch = null;
      for (const option of gpuSelect.options) {
        if (!option.value) continue;
        const text = option.textContent.toLowerCase();
        option.hidden = !words.every((word) => text.includes(word));
        if (!option.hidden && !firstMatch) firstMatch = option;
      }
      if (firstMatch && (!gpuSelect.value || gpuSelect.selectedOptions[0].hidden)) {
        gpuSelect.value = firstMatch.value;
        gpuSelect.dispatchEvent(new Event("change"));
      }
    });
  }

  // Picking a GPU fills in its memory (its largest size; the field stays editable).
  if (gpuSelect && vramInput) {
    gpuSelect.addEventListener("change", () => {
      const sizes = gpuSizes[gpuSelect.value];
      if (sizes && sizes.length) vramInput.value = Math.max(...sizes);
    });
  }

  // The WebGL renderer string names this computer's GPU: suggest the catalog entry it matches.
  const normalise = (text) => text.toLowerCase().replace(/nvidia|amd|intel|apple|\(r\)|\(tm\)/g, "").replace(/[^a-z0-9]/g, "");

  function rendererName() {
    try {
      const gl = document.createElement("canvas").getContext("webgl");
      if (!gl) return "";
      const info = gl.getExtension("WEBGL_debug_renderer_info");
      return String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER) || "");
    } catch (error) {
      return "";
    }
  }

  function bestMatch(renderer) {
    const target = normalise(renderer);
    let best = null;
    for (const option of gpuSelect ? gpuSelect.options : []) {
      if (!option.value) continue;
      const key = normalise(option.textContent.replace(/\(.*\)$/, ""));
      if (key && target.includes(key) && (!best || key.length > best.key.length)) best = { key, option };
    }
    return best && best.option;
  }

  async function suggest() {
    if (!gpuSelect || gpuSelect.value) return;
    let renderer = rendererName();
    if (navigator.gpu && navigator.gpu.requestAdapter) {
      try {
        const adapter = await navigator.gpu.requestAdapter();
        const info = adapter && (adapter.info || (adapter.requestAdapterInfo && await adapter.requestAdapterInfo()));
        if (info && (info.description || info.device)) renderer += " " + (info.description || info.device);
      } catch (error) { /* WebGPU is optional */ }
    }
    const option = bestMatch(renderer);
    if (!option) return;
    const box = document.getElementById("gpu-suggestion");
    document.getElementById("gpu-suggestion-text").textContent =
      box.dataset.prefix ? `${box.dataset.prefix} ${option.textContent}` : option.textContent;
    box.hidden = false;
    document.getElementById("gpu-suggestion-use").addEventListener("click", () => {
      gpuSelect.value = option.value;
      gpuSelect.dispatchEvent(new Event("change"));
      box.hidden = true;
    });
  }

  // Copy link: the clipboard where allowed, else the text is selected for the person to copy.
  const copyButton = document.getElementById("copy-link");
  const shareInput = document.getElementById("share-url");
  if (copyButton && shareInput) {
    copyButton.addEventListener("click", async () => {
      shareInput.select();
      try {
        await navigator.clipboard.writeText(shareInput.value);
      } catch (error) {
        document.execCommand && document.execCommand("copy");
      }
      const label = copyButton.textContent;
      copyButton.textContent = copyButton.dataset.copied;
      setTimeout(() => { copyButton.textContent = label; }, 1500);
    });
  }

  suggest();  // the script is deferred: the document is parsed already
})();
