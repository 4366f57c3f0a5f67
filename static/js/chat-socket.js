// The chat's WebSocket: one connection at a time, opened again with exponential back-off (0.5 s doubling to 30 s,
// ±20 %) whenever it closes; JSON frames both ways. chat.js says what each event does: onStatus("connecting" |
// "up" | "down", seconds until the next try), onOpen(), onFrame(frame), onDropped() (a connection that was up
// closed).
"use strict";

window.LLMSiteSocket = (function () {
  const MAX_BACKOFF_MS = 30000;

  function create({ path, onStatus, onOpen, onFrame, onDropped }) {
    return {
      socket: null,
      attempt: 0,
      timer: null,
      url() {
        return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}`;
      },
      open() {
        clearTimeout(this.timer);
        this.timer = null;
        if (this.socket) return;
        onStatus("connecting");
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
          onStatus("up");
          onOpen();
        });
        socket.addEventListener("message", (event) => {
          let frame;
          try {
            frame = JSON.parse(event.data);
          } catch (error) {
            return;
          }
          if (frame) onFrame(frame);
        });
        socket.addEventListener("close", () => {
          if (this.socket !== socket) return;
          this.socket = null;
          onDropped();
          this.retry();
        });
      },
      retry() {
        const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
        this.attempt += 1;
        onStatus("down", Math.ceil(delay / 1000));
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
  }

  return { create };
})();
