// Progressive enhancements shared by every page. Every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // The language switcher submits itself when a language is picked; its button stays for no-JS visitors.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    const button = select.form.querySelector("button[type=submit]");
    if (button) button.hidden = true;
    select.addEventListener("change", () => select.form.submit());
  }
});
