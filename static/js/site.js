// Progressive enhancements shared by every page. Every page works without this file.
"use strict";

// On a narrow screen the site menu folds behind one button (site.css shows the button only there).
// Without this script the button stays hidden and the menu stays open.
function setUpMenuButton() {
  const button = document.getElementById("menu-button");
  const menu = button && document.getElementById(button.getAttribute("aria-controls"));
  if (!menu) return;
  const header = button.closest(".site-header");
  const setOpen = (open) => {
    button.setAttribute("aria-expanded", String(open));
    header.classList.toggle("menu-open", open);
  };
  header.classList.add("has-menu-button");
  button.hidden = false;
  setOpen(false);
  button.addEventListener("click", () => setOpen(button.getAttribute("aria-expanded") !== "true"));
  // Escape closes the open menu and gives the focus back to its button.
  header.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
      setOpen(false);
      if (getComputedStyle(button).display !== "none") button.focus();
    }
  });
}

// A skip link moves the keyboard focus, not only the scroll position: to its target, or to the nearest
// enclosing form or region while the target is disabled (the chat's message box before its socket is up).
function setUpSkipLinks() {
  for (const link of document.querySelectorAll("a.skip-link[href^='#']")) {
    link.addEventListener("click", (event) => {
      let target = document.getElementById(link.getAttribute("href").slice(1));
      if (!target) return;
      event.preventDefault();
      if (target.disabled) target = target.closest("form, main") || target;
      if (target.tabIndex < 0 && !target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
      target.focus();
      target.scrollIntoView({block: "nearest"});
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  // The language switcher submits itself when a language is picked; its button stays for no-JS visitors.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    const button = select.form.querySelector("button[type=submit]");
    if (button) button.hidden = true;
    select.addEventListener("change", () => select.form.submit());
  }
  setUpMenuButton();
  setUpSkipLinks();
});
