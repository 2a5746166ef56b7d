// The chat panel: hall or tour scope, reactions. Every name and line from others is set through
// textContent (dom.js h()), so a message such as `<img src=x onerror=...>` shows as those characters.
import { h } from "../dom.js";

export const MAX_CHAT_CHARS = 500;
export const REACTIONS = ["👍", "👏", "❤️", "😂", "😮", "❓"];
const MAX_LINES = 200;

export class ChatPanel {
  /**
   * @param {{send: (message: object) => boolean, inTour: () => boolean, me: () => object|null}} deps
   */
  constructor({ send, inTour, me }) {
    this.send = send;
    this.inTour = inTour;
    this.me = me;
    this.log = h("ul", { class: "live-chat-log", "aria-live": "polite", "data-live": "chat-log" });
    this.scope = h("select", { name: "scope", "aria-label": "Chat to", "data-live": "chat-scope" }, h("option", { value: "hall" }, "Hall"), h("option", { value: "tour" }, "Tour"));
    this.input = h("input", {
      name: "text",
      type: "text",
      maxlength: String(MAX_CHAT_CHARS),
      placeholder: "Say something…",
      autocomplete: "off",
      "aria-label": "Chat message",
      "data-live": "chat-input",
    });
    this.status = h("p", { class: "live-chat-status", role: "status" });
    const form = h(
      "form",
      { class: "live-chat-form", onsubmit: (event) => this._submit(event) },
      this.scope,
      this.input,
      h("button", { type: "submit", "data-live": "chat-send" }, "Send"),
    );
    // Keys typed into the chat must not walk the visitor around the hall (WASD controls).
    for (const type of ["keydown", "keyup"]) form.addEventListener(type, (event) => event.stopPropagation());
    const reactions = h(
      "div",
      { class: "live-reactions", role: "group", "aria-label": "Reactions" },
      REACTIONS.map((emoji) => h("button", { type: "button", title: `React ${emoji}`, "data-react": emoji, onclick: () => this.send({ type: "react", emoji }) }, emoji)),
    );
    this.element = h("section", { class: "live-panel live-chat", "aria-label": "Chat", "data-live": "chat" }, this.log, form, reactions, this.status);
    this.refresh();
  }

  /** Show or hide the tour scope as the visitor joins or leaves a tour. */
  refresh() {
    const tour = this.inTour();
    this.scope.hidden = !tour;
    if (!tour) this.scope.value = "hall";
  }

  _submit(event) {
    event.preventDefault();
    const text = this.input.value.trim();
    if (!text) return;
    if (text.length > MAX_CHAT_CHARS) {
      this.setStatus(`A message is at most ${MAX_CHAT_CHARS} characters.`);
      return;
    }
    const scope = this.inTour() ? this.scope.value : "hall";
    if (this.send({ type: "chat", scope, text })) {
      this.input.value = "";
      this.setStatus("");
    } else {
      this.setStatus("Not connected: the message was not sent.");
    }
  }

  setStatus(text) {
    this.status.textContent = text;
  }

  _append(line) {
    this.log.append(line);
    while (this.log.childElementCount > MAX_LINES) this.log.firstElementChild.remove();
    this.log.scrollTop = this.log.scrollHeight;
  }

  /** A `chat` message from the server. */
  message(message) {
    const mine = message.from?.id === this.me()?.id;
    this._append(
      h(
        "li",
        { class: mine ? "mine" : null, "data-scope": message.scope },
        message.scope === "tour" ? h("span", { class: "live-chat-scope" }, "tour") : null,
        h("span", { class: "live-chat-name" }, message.from?.name ?? "?"),
        h("span", { class: "live-chat-text" }, message.text),
      ),
    );
  }

  /** A `react` message from the server. */
  reaction(message) {
    this._append(h("li", { class: "live-chat-react" }, h("span", { class: "live-chat-name" }, message.from?.name ?? "?"), h("span", {}, message.emoji)));
  }
}
