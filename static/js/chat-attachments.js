// Text files attached to a message: read in the browser (UTF-8 text only, never HTML) and sent as part of the
// message, each under its name in a fence longer than any run of backticks inside it.
"use strict";

window.LLMSiteAttachments = (function () {
  function withAttachments(text, files) {
    const parts = text ? [text] : [];
    for (const file of files) {
      const longest = Math.max(2, ...Array.from(file.text.matchAll(/`+/g), (m) => m[0].length));
      const fence = "`".repeat(longest + 1);
      const language = (file.name.match(/\.([A-Za-z0-9]+)$/) || ["", ""])[1].toLowerCase();
      parts.push(`**${file.name}**\n\n${fence}${language}\n${file.text.replace(/\n$/, "")}\n${fence}`);
    }
    return parts.join("\n\n");
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

  function sizeLabel(bytes) {
    return bytes < 1024 ? `${bytes} B` : `${Math.round(bytes / 1024).toLocaleString()} KB`;
  }

  return { withAttachments, readTextFile, sizeLabel };
})();
