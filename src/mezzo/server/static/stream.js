// A workspace's event stream over WebSocket that reconnects by itself from the last seq seen,
// so nothing durable is missed and nothing is delivered twice.

import { apiKey, enc } from "./api.js";

const MAX_BACKOFF_MS = 4000;

export class EventStream {
  // handlers: onEvent(event), onStatus("connecting" | "live" | "reconnecting", detail),
  // onFatal(message) when retrying cannot help (bad key, workspace gone).
  constructor(workspace, { after = 0, types = null, ...handlers }) {
    this.workspace = workspace;
    this.lastSeq = after;
    this.types = types;
    this.handlers = handlers;
    this.attempt = 0;
    this.closed = false;
    this.socket = null;
    this.timer = null;
  }

  start() {
    this.connect();
    return this;
  }

  url() {
    const url = new URL(`/v1/workspaces/${enc(this.workspace)}/events`, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("after", String(this.lastSeq));
    if (this.types) url.searchParams.set("types", this.types.join(","));
    const key = apiKey.get();
    if (key) url.searchParams.set("token", key);
    return url;
  }

  connect() {
    if (this.closed) return;
    this.status(this.attempt ? "reconnecting" : "connecting");
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.status("live");
    };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.seq !== null) {
        if (event.seq <= this.lastSeq) return;
        this.lastSeq = event.seq;
      }
      this.handlers.onEvent?.(event);
    };
    socket.onclose = (close) => {
      if (this.socket !== socket || this.closed) return;
      this.socket = null;
      if (close.code === 4401 || close.code === 4404) {
        this.closed = true;
        this.handlers.onFatal?.(close.code, close.reason || "the server closed the stream");
        return;
      }
      if (close.code === 4400 && /beyond the head/.test(close.reason)) {
        // The log is shorter than what we saw: a different store behind the same address.
        this.lastSeq = 0;
        this.handlers.onReset?.();
      }
      this.attempt += 1;
      const delay = Math.min(MAX_BACKOFF_MS, 150 * 2 ** Math.min(this.attempt, 5));
      this.status("reconnecting", close.reason || `connection lost (code ${close.code})`);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  // Drop the connection as a network failure would; it reconnects by itself.
  drop() {
    this.socket?.close(4999, "dropped by the page");
  }

  status(state, detail = "") {
    this.handlers.onStatus?.(state, detail);
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000);
  }
}
