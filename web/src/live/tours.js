// The tours panel: live and scheduled tours, join and leave, the follow indicator, raise hand,
// voice status; for a guide (or admin) leading a tour, its controls: follow, summon, go to booth,
// point at a product, the hand queue, spotlight, mute, kick, end.
//
// The panel is redrawn from LiveState on every change; inputs a person types into (the new tour
// title) live outside the redrawn part so a redraw never steals them.
import { h } from "../dom.js";

const MIC_NOTES = {
  asking: "Asking for your microphone…",
  on: "Microphone on.",
  refused: "Microphone blocked: you can listen and use chat.",
  unavailable: "No microphone found: you can listen and use chat.",
};

function button(label, action, onclick, extra = {}) {
  return h("button", { type: "button", "data-action": action, onclick, ...extra }, label);
}

export class ToursPanel {
  /**
   * @param {object} deps
   * @param {import("./state.js").LiveState} deps.state
   * @param {(message: object) => boolean} deps.send
   * @param {() => object} deps.manifest the hall manifest (booths)
   * @param {(boothId: string) => Promise<object[]>} deps.products a booth's products (REST)
   * @param {string} deps.lang
   * @param {object} deps.controls {voice, follow: {paused}, pointing: {on}} and callbacks
   */
  constructor({ state, send, manifest, products, lang, controls }) {
    Object.assign(this, { state, send, manifest, products, lang, controls });
    this.status = h("p", { class: "live-status", role: "status", "data-live": "status" });
    this.body = h("div", { class: "live-tours-body" });
    this.title = h("input", { name: "title", type: "text", maxlength: "200", placeholder: "Tour title", "aria-label": "New tour title" });
    this.createForm = h(
      "form",
      { class: "live-create", "data-live": "create-form", onsubmit: (event) => this._create(event) },
      this.title,
      h("button", { type: "submit", "data-action": "create" }, "Start a tour"),
    );
    for (const type of ["keydown", "keyup"]) this.createForm.addEventListener(type, (event) => event.stopPropagation());
    this.selectedBooth = null;
    this.productCache = new Map();
    this.loading = new Set();
    this.element = h(
      "section",
      { class: "live-panel live-tours", "aria-label": "Tours", "data-live": "tours" },
      h("h2", {}, "Tours"),
      this.status,
      this.body,
      this.createForm,
    );
  }

  setStatus(text) {
    this.status.textContent = text;
  }

  _create(event) {
    event.preventDefault();
    const title = this.title.value.trim();
    if (!title) return;
    if (this.send({ type: "tour.create", title })) this.title.value = "";
  }

  render() {
    const { state } = this;
    this.createForm.hidden = !state.mayGuide || Boolean(state.tour);
    const parts = [];
    if (state.note) parts.push(h("p", { class: "live-note", "data-live": "note" }, state.note));
    if (!state.tour) parts.push(...this._lists());
    else if (state.isGuide) parts.push(...this._guide());
    else parts.push(...this._member());
    // Skip a redraw that would change nothing: replacing a button between a person's mousedown and
    // mouseup loses the click. (innerHTML is only read here, as a signature, never written.)
    const next = h("div", {}, parts);
    if (next.innerHTML === this.signature) return;
    this.signature = next.innerHTML;
    this.body.replaceChildren(...next.childNodes);
  }

  _lists() {
    const { state } = this;
    const live = [...state.tours.values()];
    const items = live.map((tour) =>
      h(
        "li",
        { "data-tour": tour.id },
        h("span", { class: "live-tour-title" }, tour.title),
        h("span", { class: "live-tour-meta" }, `${tour.guide?.name ?? ""} · ${tour.members}/${tour.capacity}`),
        button("Join", "join", () => this.send({ type: "tour.join", tour_id: tour.id }), { "data-tour": tour.id, disabled: tour.members >= tour.capacity }),
      ),
    );
    const scheduled = state.scheduled.map((tour) =>
      h(
        "li",
        { "data-scheduled": tour.id },
        h("span", { class: "live-tour-title" }, tour.title),
        h("span", { class: "live-tour-meta" }, "scheduled"),
        state.mayGuide ? button("Start", "start", () => this.send({ type: "tour.start", tour_id: tour.id }), { "data-tour": tour.id }) : null,
      ),
    );
    return [
      h("h3", {}, "Live now"),
      items.length ? h("ul", { class: "live-tour-list", "data-live": "live-tours" }, items) : h("p", { class: "live-empty" }, "No tour is running."),
      scheduled.length ? h("h3", {}, "Scheduled") : null,
      scheduled.length ? h("ul", { class: "live-tour-list", "data-live": "scheduled-tours" }, scheduled) : null,
    ];
  }

  _header() {
    const { tour } = this.state;
    const mic = this.controls.voice.micState;
    return [
      h("p", { class: "live-tour-current", "data-live": "current-tour", "data-tour": tour.id }, h("strong", {}, tour.title), ` · guide ${tour.guide.name}`),
      MIC_NOTES[mic] ? h("p", { class: `live-mic live-mic-${mic}`, "data-live": "mic", "data-mic": mic }, MIC_NOTES[mic]) : null,
    ];
  }

  _member() {
    const { state, controls } = this;
    const { tour, me } = state;
    const raised = tour.hands.includes(me.id);
    const follow = controls.follow;
    const muted = tour.muted.includes(me.id);
    return [
      ...this._header(),
      tour.follow
        ? h(
            "p",
            { class: `live-follow${follow.paused ? " paused" : ""}`, "data-live": "follow", "data-following": String(!follow.paused) },
            follow.paused ? "Follow paused" : `Following ${tour.guide.name}`,
            button(follow.paused ? "Resume" : "Pause", "follow-pause", () => controls.setFollowPaused(!follow.paused)),
          )
        : null,
      tour.spotlight === me.id ? h("p", { class: "live-note" }, "You are in the spotlight: everyone hears you.") : null,
      muted ? h("p", { class: "live-note" }, "The guide muted your microphone.") : null,
      h(
        "div",
        { class: "live-actions" },
        button(raised ? "Lower hand" : "Raise hand", "hand", () => this.send({ type: "hand", raised: !raised }), { "aria-pressed": String(raised) }),
        controls.voice.micTrack ? button(controls.voice.selfMuted ? "Unmute me" : "Mute me", "self-mute", () => controls.voice.setSelfMuted(!controls.voice.selfMuted)) : null,
        button("Leave", "leave", () => this.send({ type: "tour.leave" })),
      ),
      this._roster(false),
    ];
  }

  _guide() {
    const { tour } = this.state;
    const pointing = this.controls.pointing;
    return [
      ...this._header(),
      h(
        "div",
        { class: "live-actions" },
        button(tour.follow ? "Follow: on" : "Follow: off", "follow", () => this.send({ type: "tour.follow", on: !tour.follow }), { "aria-pressed": String(tour.follow) }),
        button("Summon", "summon", () => this.send({ type: "tour.summon" })),
        button("End tour", "end", () => this.send({ type: "tour.end" })),
      ),
      this._handQueue(),
      this._boothControls(),
      h(
        "div",
        { class: "live-actions" },
        button(pointing.on ? "Pointing: click a product" : "Point in the hall", "pointing", () => this.controls.setPointing(!pointing.on), { "aria-pressed": String(pointing.on) }),
        tour.pointing ? button("Clear pointer", "unpoint", () => this.send({ type: "tour.point", product_id: null })) : null,
      ),
      this._productList(),
      this._roster(true),
    ];
  }

  _boothControls() {
    const booths = this.manifest()?.booths ?? [];
    if (!booths.some((b) => b.id === this.selectedBooth)) this.selectedBooth = this.state.tour.stop?.booth_id ?? booths[0]?.id ?? null;
    const select = h(
      "select",
      { "aria-label": "Booth", "data-live": "booth-select", onchange: (event) => this._chooseBooth(event.currentTarget.value) },
      booths.map((b) => h("option", { value: b.id, selected: b.id === this.selectedBooth }, `${b.number} · ${b.name}`)),
    );
    return h(
      "div",
      { class: "live-actions" },
      select,
      button("Go to booth", "goto", () => this.send({ type: "tour.goto", booth_id: this.selectedBooth }), { disabled: !booths.length }),
    );
  }

  _chooseBooth(boothId) {
    this.selectedBooth = boothId;
    this.render();
  }

  _productList() {
    const boothId = this.selectedBooth;
    if (!boothId) return null;
    let products = this.productCache.get(boothId);
    if (!products) {
      // Until the REST answer: the manifest's hotspot ids, so pointing works without it.
      const booth = (this.manifest()?.booths ?? []).find((b) => b.id === boothId);
      products = (booth?.hotspots ?? []).map((s, i) => ({ id: s.product_id, name: `Product ${i + 1}` }));
      if (!this.loading.has(boothId)) {
        this.loading.add(boothId);
        this.products(boothId)
          .then((items) => {
            this.productCache.set(boothId, items);
            this.render();
          })
          .catch(() => {})
          .finally(() => this.loading.delete(boothId));
      }
    }
    const pointing = this.state.tour?.pointing;
    return h(
      "ul",
      { class: "live-products", "data-live": "products", "data-booth": boothId },
      products.map((p) =>
        h(
          "li",
          { class: p.id === pointing ? "pointing" : null },
          h("span", {}, p.names?.[this.lang] || p.name),
          button("Point", "point", () => this.send({ type: "tour.point", product_id: p.id }), { "data-product": p.id }),
        ),
      ),
    );
  }

  /** Forget a booth's products (its exhibitor changed them: booth.updated). */
  forgetProducts(boothId) {
    this.productCache.delete(boothId);
  }

  _name(id) {
    const { tour, members } = this.state;
    return tour.members.find((m) => m.id === id)?.name ?? members.get(id)?.name ?? `#${id}`;
  }

  _handQueue() {
    const { tour } = this.state;
    if (!tour.hands.length) return h("p", { class: "live-empty", "data-live": "hands" }, "No hands raised.");
    return h(
      "ol",
      { class: "live-hands", "data-live": "hands" },
      tour.hands.map((id) => h("li", { "data-member": id }, h("span", {}, this._name(id)), button("Spotlight", "spotlight", () => this.send({ type: "tour.spotlight", member: id }), { "data-member": id }))),
    );
  }

  _roster(guide) {
    const { tour } = this.state;
    const rows = tour.members.map((m) => {
      const muted = tour.muted.includes(m.id);
      const lit = tour.spotlight === m.id;
      const peer = this.controls.voice.peers.get(m.id);
      return h(
        "li",
        { "data-member": m.id },
        h("span", {}, m.name),
        tour.hands.includes(m.id) ? h("span", { class: "live-badge" }, "hand") : null,
        lit ? h("span", { class: "live-badge" }, "spotlight") : null,
        muted ? h("span", { class: "live-badge" }, "muted") : null,
        guide && peer ? h("span", { class: "live-badge", title: "voice" }, peer.pc.connectionState) : null,
        guide
          ? [
              button(lit ? "Unspotlight" : "Spotlight", "spotlight", () => this.send({ type: "tour.spotlight", member: lit ? null : m.id }), { "data-member": m.id }),
              button(muted ? "Unmute" : "Mute", "mute", () => this.send({ type: "tour.mute", member: m.id, muted: !muted }), { "data-member": m.id }),
              button("Kick", "kick", () => this.send({ type: "tour.kick", member: m.id }), { "data-member": m.id }),
            ]
          : null,
      );
    });
    return h("div", {}, h("h3", {}, `Members (${tour.members.length}/${tour.capacity})`), h("ul", { class: "live-members", "data-live": "members" }, rows));
  }
}
