// The live layer of a hall page: wires the tour websocket client to the 3D view (avatars,
// teleports, highlights, follow), the panels (tours, chat) and the voice.
import * as THREE from "three";
import { Avatars } from "./avatars.js";
import { ChatPanel } from "./chat.js";
import { LiveClient } from "./client.js";
import { FLAG_HANDS, FLAG_SPEAKING, FLAG_TELEPORTED, FLAG_VR, FrameError, decodeFrame, encodePose } from "./frames.js";
import { LiveState } from "./state.js";
import { ToursPanel } from "./tours.js";
import { Voice } from "./voice.js";

export const POSE_HZ = 15;
const KEEPALIVE_MS = 1000; // an unchanged pose is sent again at most this often
const JUMP_METRES = 2; // a move this large between two poses is a teleport: others must not smooth it
export const FOLLOW_DISTANCE = 2; // metres behind the guide
const FOLLOW_RATE = 2.5; // 1/s: the share of the remaining way covered per second (exponential)
const FOLLOW_JUMP = 12; // further than this from the guide: teleport (a long glide makes people sick in VR)
const LABEL_EVERY_MS = 500;
const ERROR_SHOWN_MS = 8000;

export class HallLive {
  constructor(view, { hallId, lang = "en", client = new LiveClient(hallId) }) {
    this.view = view;
    this.hallId = hallId;
    this.lang = lang;
    this.client = client;
    this.state = new LiveState();
    this.avatars = new Avatars(view.scene);
    this.voice = new Voice((m) => this.client.send(m), () => this.render());
    this.follow = { paused: false };
    this.pointing = { on: false };
    this.lastTeleport = null;
    this.framesReceived = 0;
    this.badFrames = 0;
    this.teleported = true; // the first pose places us: nobody should glide in from the origin
    this.lastSent = null;
    this.lastLabel = 0;
    this.eye = new THREE.Vector3();
    this.cleanups = [];
    this.chat = new ChatPanel({ send: (m) => this.client.send(m), inTour: () => Boolean(this.state.tour), me: () => this.state.me });
    this.tours = new ToursPanel({
      state: this.state,
      send: (m) => this.client.send(m),
      manifest: () => this.view.manifest,
      products: (boothId) => this._products(boothId),
      lang,
      controls: {
        voice: this.voice,
        follow: this.follow,
        pointing: this.pointing,
        setFollowPaused: (paused) => {
          this.follow.paused = paused;
          this.render();
        },
        setPointing: (on) => {
          this.pointing.on = on;
          this.render();
        },
      },
    });
  }

  start() {
    this.view.addPanel(this.tours.element, "right");
    this.view.addPanel(this.chat.element, "bottom");
    this._listen();
    this.cleanups.push(this.view.onFrame((dt, time) => this._frame(dt, time)));
    const timer = setInterval(() => this._sendPose(), 1000 / POSE_HZ);
    this.cleanups.push(() => clearInterval(timer));
    const onProduct = (event) => this._productOpened(event.detail?.productId);
    this.view.addEventListener?.("productopen", onProduct);
    this.cleanups.push(() => this.view.removeEventListener?.("productopen", onProduct));
    this.render();
    this.client.start();
  }

  dispose() {
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    this.client.close();
    this.voice.stop();
    this.avatars.dispose();
    this.tours.element.remove();
    this.chat.element.remove();
  }

  /** A product card was opened: recorded as a booth visit event (docs/protocol.md). */
  hotspotOpened(productId) {
    if (productId) this.client.send({ type: "hotspot.open", product_id: productId });
  }

  render() {
    this.tours.render();
    this.chat.refresh();
    this.tours.setStatus(this._statusText());
  }

  _statusText() {
    const { state, retryAt } = this.client;
    if (state === "open") return this.refusal && Date.now() < this.refusal.until ? this.refusal.text : "";
    if (state === "retrying") {
      const seconds = Math.max(0, Math.ceil(((retryAt ?? Date.now()) - Date.now()) / 1000));
      return `Connection lost; reconnecting in ${seconds} s…`;
    }
    if (state === "closed") return this.problem ?? "Disconnected.";
    return "Connecting…";
  }

  _listen() {
    const on = (type, callback) => this.cleanups.push(this.client.on(type, callback));
    on("welcome", (m) => this._welcome(m));
    on("presence", (m) => {
      this.state.presence(m);
      for (const { event, member } of m.changes) if (event === "leave") this.avatars.remove(member.id);
      this._label();
      this.render();
    });
    on("chat", (m) => {
      this.state.chat(m);
      this.chat.message(m);
    });
    on("react", (m) => {
      this.chat.reaction(m);
      this.avatars.react(m.from?.id, m.emoji, performance.now());
    });
    on("tour.snapshot", (m) => this._snapshot(m.tour));
    on("tour.event", (m) => this._event(m));
    on("teleport", (m) => this._teleport(m));
    on("rtc.signal", (m) => this.voice.receive(m));
    on("booth.updated", (m) => this._boothUpdated(m));
    on("error", (m) => this._error(m));
    on("frame", (data) => this._frameData(data));
    on("state", () => this.render());
    on("problem", (p) => {
      this.problem = p.final ? `Disconnected: ${p.message}.` : null;
      this.render();
    });
    on("reset", () => this._leftTour(null));
  }

  _welcome(message) {
    const before = this.state.tour?.id ?? null;
    this.state.welcome(message);
    this.problem = null;
    this.avatars.me = message.you.id;
    for (const id of [...this.avatars.byId.keys()]) if (!this.state.members.has(id)) this.avatars.remove(id);
    this.teleported = true;
    if (this.state.tour) {
      this.client.seen(this.state.tour.id, this.state.tour.seq);
      this._enteredTour();
    } else if (before) this._leftTour(before);
    this._label();
    this.render();
  }

  _snapshot(tour) {
    const before = this.state.tour?.id ?? null;
    const ours = this.state.snapshot(tour);
    if (ours) {
      this.client.seen(tour.id, tour.seq);
      if (before !== tour.id) this.follow.paused = false;
      this._enteredTour();
    } else if (before === tour.id) this._leftTour(before);
    this.render();
  }

  _event(message) {
    const before = this.state.tour;
    const beforeId = before?.id ?? null;
    const result = this.state.event(message);
    if (result.sync) this.client.send({ type: "tour.sync", tour_id: result.sync, ref: `sync:${result.sync}` });
    if (!result.applied) return;
    const tour = this.state.tour;
    if (tour && tour.id === message.tour_id) this.client.seen(tour.id, tour.seq);
    if (beforeId === message.tour_id && !tour) this._leftTour(beforeId);
    const kind = result.event.kind;
    if (tour && tour.id === message.tour_id) {
      if (kind === "point") this.view.highlightProduct(tour.pointing ?? null);
      if (kind === "member_left" && this.state.isGuide) this.voice.drop(result.event.member);
      this._voiceUpdate();
    }
    this._label();
    this.render();
  }

  _enteredTour() {
    const { tour, me } = this.state;
    this.view.highlightProduct(tour.pointing ?? null);
    if (tour.guide.id === me.id) this.voice.lead();
    else this.voice.joinAsMember(tour.guide.id);
    this._voiceUpdate();
  }

  _leftTour(tourId) {
    if (tourId) this.client.forget(tourId);
    this.view.highlightProduct(null);
    this.voice.stop();
    this.pointing.on = false;
    this.render();
  }

  _voiceUpdate() {
    const { tour, me } = this.state;
    if (tour) this.voice.update({ me: me.id, muted: tour.muted, spotlight: tour.spotlight });
  }

  _teleport(message) {
    this.view.teleport(message.position, message.yaw);
    this.teleported = true;
    this.lastTeleport = { ...message, at: Date.now() };
  }

  _boothUpdated(message) {
    this.tours.forgetProducts(message.booth_id);
    Promise.resolve(this.view.reloadManifest())
      .then(() => this.render())
      .catch((error) => console.warn("live: reloading the manifest failed", error));
  }

  _error(message) {
    if (message.ref?.startsWith("sync:") && message.code === "not_found") {
      const tourId = message.ref.slice(5);
      if (this.state.syncFailed(tourId)) this._leftTour(tourId);
      this.render();
      return;
    }
    const text = `${message.message ?? message.code} (${message.code})`;
    if (message.code === "rate_limited") this.chat.setStatus(text);
    else {
      this.refusal = { text, until: Date.now() + ERROR_SHOWN_MS }; // redraws keep it for a while
      this.tours.setStatus(text);
    }
  }

  _frameData(data) {
    try {
      const frame = decodeFrame(data);
      this.framesReceived += 1;
      this.avatars.applyFrame(frame, performance.now());
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      this.badFrames += 1;
    }
  }

  _label() {
    const extras = new Map();
    const tour = this.state.tour;
    if (tour) for (const id of tour.hands) extras.set(id, "hand raised");
    this.avatars.label(this.state.members, extras);
  }

  _frame(dt, time) {
    const now = performance.now();
    this.avatars.update(now, dt, this.view.camera.getWorldPosition(this.eye));
    this._follow(dt);
    if (time - this.lastLabel > LABEL_EVERY_MS) {
      this.lastLabel = time;
      this._label(); // avatars seen for the first time since the last roster change get their tags
      if (this.client.state === "retrying") this.tours.setStatus(this._statusText());
    }
  }

  _follow(dt) {
    const { tour } = this.state;
    if (!tour?.follow || this.state.isGuide || this.follow.paused) return;
    const guide = this.avatars.pose(tour.guide.id);
    if (!guide) return;
    const behind = new THREE.Vector3(Math.sin(guide.yaw), 0, Math.cos(guide.yaw)).multiplyScalar(FOLLOW_DISTANCE);
    const target = guide.position.clone().add(behind);
    // Measured from the head, not the rig: in VR the head is anywhere in the play area.
    const [hx, , hz] = this.view.getPose().position;
    const rig = this.view.rig.position;
    const dx = target.x - hx;
    const dz = target.z - hz;
    const distance = Math.hypot(dx, dz);
    if (distance > FOLLOW_JUMP) {
      this.view.teleport([target.x, 0, target.z], guide.yaw);
      this.teleported = true;
    } else if (distance > 0.25) {
      const k = 1 - Math.exp(-FOLLOW_RATE * Math.min(dt, 0.1));
      rig.x += dx * k;
      rig.z += dz * k;
    }
  }

  _sendPose() {
    if (this.client.state !== "open") return;
    const pose = this.view.getPose();
    const p = pose.position;
    if (this.lastSent && Math.hypot(p[0] - this.lastSent.p[0], p[1] - this.lastSent.p[1], p[2] - this.lastSent.p[2]) > JUMP_METRES) {
      this.teleported = true;
    }
    let flags = (pose.vr ? FLAG_VR : 0) | (this.voice.speaking ? FLAG_SPEAKING : 0) | (this.teleported ? FLAG_TELEPORTED : 0);
    const hands = pose.hands?.map((hand) => ({ offset: hand.position.map((v, i) => v - p[i]), rotation: hand.quaternion })) ?? null;
    let buffer;
    try {
      buffer = encodePose(p, pose.quaternion, flags, hands);
    } catch {
      try {
        flags &= ~FLAG_HANDS;
        buffer = encodePose(p, pose.quaternion, flags, null); // a hand out of range: the head still counts
      } catch {
        return; // outside the hall's coordinate limits: nothing to send
      }
    }
    const bytes = new Uint8Array(buffer);
    const now = performance.now();
    const last = this.lastSent;
    if (last && now - last.at < KEEPALIVE_MS && last.bytes.length === bytes.length && last.bytes.every((b, i) => b === bytes[i])) return;
    if (this.client.sendBinary(buffer)) {
      this.teleported = false;
      this.lastSent = { p: [...p], bytes, at: now };
    }
  }

  /** A product card was opened (a click on the product): a visit event; a guide pointing also points. */
  _productOpened(productId) {
    if (!productId) return;
    this.hotspotOpened(productId);
    if (this.pointing.on && this.state.isGuide) {
      this.client.send({ type: "tour.point", product_id: productId });
      this.pointing.on = false;
      this.render();
    }
  }

  async _products(boothId) {
    const response = await fetch(`/api/booths/${boothId}/products?limit=200`, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`products of ${boothId}: HTTP ${response.status}`);
    return (await response.json()).items;
  }

  /** What tests (and curious people) read as window.pavilion.live. */
  hook() {
    const live = this;
    return {
      get me() {
        return live.state.me;
      },
      get members() {
        return live.state.members;
      },
      get tour() {
        return live.state.tour;
      },
      get lastTeleport() {
        return live.lastTeleport;
      },
      get messages() {
        return live.state.messages;
      },
      get tours() {
        return [...live.state.tours.values()];
      },
      get scheduled() {
        return live.state.scheduled;
      },
      get connection() {
        return live.client.state;
      },
      get avatars() {
        return live.avatars.describe();
      },
      get voice() {
        return live.voice.describe();
      },
      get following() {
        return Boolean(live.state.tour?.follow && !live.state.isGuide && !live.follow.paused);
      },
      get frames() {
        return { received: live.framesReceived, bad: live.badFrames };
      },
      codec: {
        encodePose: (...args) => Array.from(new Uint8Array(encodePose(...args))),
        decodeFrame: (bytes) => decodeFrame(new Uint8Array(bytes).buffer),
      },
      client: live.client,
      voiceStats: () => live.voice.stats(),
      hotspotOpened: (productId) => live.hotspotOpened(productId),
      dispose: () => live.dispose(),
    };
  }
}
