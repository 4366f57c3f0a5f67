// Copying text: the async clipboard where the page is a secure context, else the older execCommand("copy")
// (plain http on a LAN address is not a secure context); a button says it copied for a moment.
"use strict";

window.LLMSiteClipboard = (function () {
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
    const helper = document.createElement("textarea");
    helper.className = "clipboard-helper";
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

  async function copyWithFeedback(button, text, copiedLabel) {
    const label = button.textContent;
    if (await copyText(text)) {
      button.textContent = copiedLabel;
      setTimeout(() => {
        button.textContent = label;
      }, 1500);
    }
  }

  return { copyText, copyWithFeedback };
})();
