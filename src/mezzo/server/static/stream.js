// A workspace's event stream over WebSocket that reconnects by itself from the last seq seen,
// so nothing durable is missed and nothing is delivered twice.

import { ApiError, apiKey, enc, get, Unauthorized } from "./api.js";

const MAX_BACKOFF_MS = 4000;
// Catching up on a long log goes faster in JSON pages than one WebSocket frame per event.
const CATCH_UP_PAGE = 2000;

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

  async connect() {
    if (this.closed) return;
    this.status(this.attempt ? "reconnecting" : "connecting");
    try {
      await this.catchUp();
    } catch (error) {
      if (error instanceof Unauthorized) return this.fatal(4401, error.message);
      if (error instanceof ApiError && error.status === 404) return this.fatal(4404, error.message);
      if (error instanceof ApiError && /beyond the head/.test(error.message)) this.reset();
      return this.retry(error.message);
    }
    if (this.closed) return;
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.status("live");
    };
    socket.onmessage = (message) => this.deliver(JSON.parse(message.data));
    socket.onclose = (close) => {
      if (this.socket !== socket || this.closed) return;
      this.socket = null;
      if (close.code === 4401 || close.code === 4404) {
        this.fatal(close.code, close.reason || "the server closed the stream");
        return;
      }
      if (close.code === 4400 && /beyond the head/.test(close.reason)) this.reset();
      this.retry(close.reason || `connection lost (code ${close.code})`);
    };
  }

  async catchUp() {
    const types = this.types ? `&types=${enc(this.types.join(","))}` : "";
    const base = `/v1/workspaces/${enc(this.workspace)}/events?limit=${CATCH_UP_PAGE}${types}`;
    for (;;) {
      const page = await get(`${base}&after=${this.lastSeq}`);
      if (this.closed) return;
      for (const event of page) this.deliver(event);
      if (page.length < CATCH_UP_PAGE) return;
    }
  }

  deliver(event) {
    if (event.seq !== null) {
      if (event.seq <= this.lastSeq) return;
      this.lastSeq = event.seq;
    }
    this.handlers.onEvent?.(event);
  }

  fatal(code, reason) {
    this.closed = true;
    this.handlers.onFatal?.(code, reason);
  }

  // The log is shorter than what we saw: a different store behind the same address.
  reset() {
    this.lastSeq = 0;
    this.handlers.onReset?.();
  }

  retry(reason) {
    if (this.closed) return;
    this.attempt += 1;
    const delay = Math.min(MAX_BACKOFF_MS, 150 * 2 ** Math.min(this.attempt, 5));
    this.status("reconnecting", reason);
    this.timer = setTimeout(() => this.connect(), delay);
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
