// The tour websocket client (docs/protocol.md): token -> ticket -> websocket -> hello, then
// resume with the session token after a drop, per-tour last_seq, an app ping every 10 s.
//
// It holds no hall state beyond what resuming needs: every server message is handed to the
// listeners (`on(type, cb)`); binary pose frames arrive as type "frame" (an ArrayBuffer).

export const PING_SECONDS = 10;
const FIRST_RETRY_SECONDS = 2;
const MAX_RETRY_SECONDS = 30;
// Close codes after which reconnecting cannot help (docs/protocol.md "Limits and close codes").
const FINAL_CLOSES = new Map([
  [4000, "protocol version not supported"],
  [4403, "removed from the hall"],
  [4404, "no such hall"],
]);
const CLOSE_UNAUTHORISED = 4401;

/** Full jitter (docs/protocol.md "Resume"): attempt 0 waits 0-2 s, then up to 2^n x 2 s, capped at 30 s. */
export function retryDelaySeconds(attempt, random = Math.random) {
  return random() * Math.min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** attempt);
}

async function postJson(path, body, token) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body ?? {}) });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(data?.error?.message ?? response.statusText);
    error.status = response.status;
    error.code = data?.error?.code ?? "http_error";
    throw error;
  }
  return data;
}

function displayName() {
  let name = localStorage.getItem("pavilion.name");
  if (!name) {
    name = `Visitor ${String(Math.floor(Math.random() * 900) + 100)}`;
    localStorage.setItem("pavilion.name", name);
  }
  return name;
}

export class LiveClient {
  /**
   * @param {string} hallId the hall to join
   * @param {{storage?: Storage}} options sessionStorage keeps the guest token across reloads
   */
  constructor(hallId, { storage = window.sessionStorage } = {}) {
    this.hallId = hallId;
    this.storage = storage;
    this.listeners = new Map();
    this.socket = null;
    this.session = null; // the resume token of the last welcome
    this.lastSeq = new Map(); // tour id -> seq of the last event applied
    this.me = null;
    this.state = "idle"; // idle | connecting | open | retrying | closed
    this.attempt = 0;
    this.retryAt = null;
    this.rttMs = null;
    this.closed = false;
    this._timers = new Set();
    this._pingTimer = null;
  }

  on(type, callback) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(callback);
    return () => this.listeners.get(type).delete(callback);
  }

  emit(type, payload) {
    for (const callback of this.listeners.get(type) ?? []) {
      try {
        callback(payload);
      } catch (error) {
        console.warn(`live: a ${type} listener failed`, error);
      }
    }
  }

  start() {
    this.closed = false;
    this._connect();
  }

  close() {
    this.closed = true;
    this._setState("closed");
    for (const timer of this._timers) clearTimeout(timer);
    this._timers.clear();
    clearInterval(this._pingTimer);
    this.socket?.close(1000, "bye");
  }

  /** Send a control message; false when the socket is not open (nothing is queued). */
  get writable() {
    // The state stays "open" until the close event; a socket closing meanwhile must not be written
    // to (Chromium logs every such send as a console error).
    return this.state === "open" && this.socket?.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.writable) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  sendBinary(buffer) {
    if (!this.writable || this.socket.bufferedAmount > 64 * 1024) return false;
    this.socket.send(buffer);
    return true;
  }

  /** Record the seq of an applied tour event (resume asks for what came after it). */
  seen(tourId, seq) {
    if (seq === null || seq === undefined) this.lastSeq.delete(tourId);
    else this.lastSeq.set(tourId, seq);
  }

  forget(tourId) {
    this.lastSeq.delete(tourId);
  }

  async token() {
    const stored = localStorage.getItem("pavilion.token");
    if (stored) return { token: stored, guest: false };
    let guest = this.storage?.getItem("pavilion.guestToken");
    if (!guest) {
      guest = (await postJson("/api/auth/guest", { display_name: displayName() })).access_token;
      this.storage?.setItem("pavilion.guestToken", guest);
    }
    return { token: guest, guest: true };
  }

  async _ticket() {
    let { token, guest } = await this.token();
    try {
      return await postJson(`/api/halls/${this.hallId}/tickets`, {}, token);
    } catch (error) {
      if (error.status !== 401) throw error;
      // An expired token: a guest gets a new one; a user walks on as a guest until it logs in again.
      if (guest) this.storage?.removeItem("pavilion.guestToken");
      else localStorage.removeItem("pavilion.token");
      ({ token } = await this.token());
      return postJson(`/api/halls/${this.hallId}/tickets`, {}, token);
    }
  }

  async _connect() {
    if (this.closed) return;
    this._setState("connecting");
    let hello;
    let url;
    try {
      if (this.session) {
        url = this.socketUrl;
        hello = { type: "hello", v: 1, resume: this.session, last_seq: Object.fromEntries(this.lastSeq) };
      } else {
        const ticket = await this._ticket();
        url = ticket.url;
        this.socketUrl = url;
        hello = { type: "hello", v: 1, ticket: ticket.ticket };
      }
    } catch (error) {
      this.emit("problem", { code: error.code ?? "network", message: String(error.message ?? error) });
      this._retry();
      return;
    }
    this._open(url, hello);
  }

  _open(url, hello) {
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.addEventListener("open", () => socket.send(JSON.stringify(hello)));
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      if (typeof event.data !== "string") {
        this.emit("frame", event.data);
        return;
      }
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this._receive(message);
    });
    socket.addEventListener("close", (event) => {
      if (socket === this.socket) this._closed(event);
    });
  }

  _receive(message) {
    if (message.type === "welcome") {
      this.session = message.session;
      this.me = message.you;
      this.attempt = 0;
      this._setState("open");
      this._startPing();
    } else if (message.type === "pong") {
      this.rttMs = performance.now() - message.t;
    }
    this.emit(message.type, message);
    this.emit("message", message);
  }

  _startPing() {
    clearInterval(this._pingTimer);
    // Keeps proxies from idling the socket out and measures the round trip (the server's own
    // websocket pings are invisible to the page).
    this._pingTimer = setInterval(() => this.send({ type: "ping", t: performance.now() }), PING_SECONDS * 1000);
  }

  _closed(event) {
    clearInterval(this._pingTimer);
    this.socket = null;
    if (this.closed) return;
    const final = FINAL_CLOSES.get(event.code);
    if (final) {
      this.emit("problem", { code: `closed_${event.code}`, message: final, final: true });
      this._setState("closed");
      return;
    }
    if (event.code === CLOSE_UNAUTHORISED) {
      // The resume token expired (or a ticket was refused): start over as a new member.
      this.session = null;
      this.lastSeq.clear();
      this.emit("reset", { code: event.code, reason: event.reason });
    }
    this.emit("drop", { code: event.code, reason: event.reason });
    this._retry();
  }

  _retry() {
    if (this.closed) return;
    const seconds = retryDelaySeconds(this.attempt);
    this.attempt += 1;
    this.retryAt = Date.now() + seconds * 1000;
    this._setState("retrying");
    const timer = setTimeout(() => {
      this._timers.delete(timer);
      this._connect();
    }, seconds * 1000);
    this._timers.add(timer);
  }

  _setState(state) {
    this.state = state;
    this.emit("state", state);
  }
}
