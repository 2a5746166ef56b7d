// Desktop and touch controls of the hall view.
//
// Desktop: WASD (or the arrow keys up/down) walk, A/D strafe, arrow keys left/right turn, Shift
// runs; dragging looks around; a click on the floor teleports there, on a product opens its
// card, anywhere else captures the mouse (pointer lock: the mouse looks, a click acts at the
// crosshair, Esc releases). Touch: one-finger drag looks, a tap teleports or opens a card, the
// stick at the bottom left walks.

const WALK_SPEED = 2.5; // m/s
const RUN_SPEED = 5;
const TURN_SPEED = 1.6; // rad/s, arrow keys
const LOCKED_LOOK = 0.0022; // rad per pixel of mouse movement
const DRAG_LOOK = 0.004; // rad per pixel dragged (the scene follows the pointer)
const CLICK_SLOP = 6; // px a click may move and still be a click
const KEYS = {
  KeyW: "forward", ArrowUp: "forward", KeyS: "back", ArrowDown: "back",
  KeyA: "left", KeyD: "right", ArrowLeft: "turnLeft", ArrowRight: "turnRight",
  ShiftLeft: "run", ShiftRight: "run",
};

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

/**
 * @param {object} player what the controls drive:
 *   look(dYaw, dPitch); walk(forward, right) metres in the view's heading;
 *   pick(clientX, clientY) -> true when the click did something (teleport, card);
 *   pickCentre() -> the same at the centre of the view; enabled() -> false while in VR
 */
export class Controls {
  constructor(canvas, overlay, player) {
    this.canvas = canvas;
    this.player = player;
    this.held = new Set();
    this.stick = [0, 0];
    this.drag = null;
    this._listeners = [];
    this._listen(window, "keydown", (e) => this._key(e, true));
    this._listen(window, "keyup", (e) => this._key(e, false));
    this._listen(window, "blur", () => this.held.clear());
    this._listen(canvas, "pointerdown", (e) => this._down(e));
    this._listen(canvas, "pointermove", (e) => this._move(e));
    this._listen(canvas, "pointerup", (e) => this._up(e));
    this._listen(canvas, "pointercancel", () => (this.drag = null));
    this._listen(document, "mousemove", (e) => this._lockedMove(e));
    this.stickElement = this._makeStick(overlay);
  }

  get locked() {
    return document.pointerLockElement === this.canvas;
  }

  /** Apply held keys and the stick for `dt` seconds. */
  update(dt) {
    if (!this.player.enabled()) return;
    const on = (name) => [...this.held].some((code) => KEYS[code] === name);
    const speed = on("run") ? RUN_SPEED : WALK_SPEED;
    const ahead = Number(on("forward")) - Number(on("back")) - this.stick[1];
    const side = Number(on("right")) - Number(on("left")) + this.stick[0];
    const turn = Number(on("turnLeft")) - Number(on("turnRight"));
    if (turn) this.player.look(turn * TURN_SPEED * dt, 0);
    const length = Math.hypot(ahead, side);
    if (length > 0.05) {
      const scale = (speed * dt) / Math.max(1, length);
      this.player.walk(ahead * scale, side * scale);
    }
  }

  dispose() {
    for (const [target, type, listener] of this._listeners) target.removeEventListener(type, listener);
    if (this.locked) document.exitPointerLock();
    this.stickElement.remove();
  }

  _listen(target, type, listener) {
    target.addEventListener(type, listener);
    this._listeners.push([target, type, listener]);
  }

  _key(event, down) {
    if (!(event.code in KEYS) || typing(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (down) this.held.add(event.code);
    else this.held.delete(event.code);
    // Arrow keys would scroll the page under the view.
    if (event.code.startsWith("Arrow")) event.preventDefault();
  }

  _down(event) {
    if (!this.player.enabled() || event.button > 0) return;
    this.drag = { id: event.pointerId, x: event.clientX, y: event.clientY, lastX: event.clientX, lastY: event.clientY, moved: 0 };
    this.canvas.setPointerCapture?.(event.pointerId);
    if (event.pointerType === "touch") this.stickElement.hidden = false;
  }

  _move(event) {
    const drag = this.drag;
    if (!drag || drag.id !== event.pointerId || this.locked) return;
    const dx = event.clientX - drag.lastX;
    const dy = event.clientY - drag.lastY;
    drag.lastX = event.clientX;
    drag.lastY = event.clientY;
    drag.moved = Math.max(drag.moved, Math.hypot(event.clientX - drag.x, event.clientY - drag.y));
    if (drag.moved > CLICK_SLOP) this.player.look(dx * DRAG_LOOK, dy * DRAG_LOOK);
  }

  _up(event) {
    const drag = this.drag;
    if (!drag || drag.id !== event.pointerId) return;
    this.drag = null;
    if (drag.moved > CLICK_SLOP) return;
    if (this.locked) {
      this.player.pickCentre();
      return;
    }
    const acted = this.player.pick(event.clientX, event.clientY);
    if (!acted && event.pointerType === "mouse") this._lock();
  }

  _lockedMove(event) {
    if (!this.locked || !this.player.enabled()) return;
    this.player.look(-event.movementX * LOCKED_LOOK, -event.movementY * LOCKED_LOOK);
  }

  _lock() {
    try {
      // A Promise in current browsers, undefined in older ones; refusals are not errors here.
      this.canvas.requestPointerLock()?.catch?.(() => {});
    } catch {
      /* pointer lock unavailable: dragging still looks around */
    }
  }

  _makeStick(overlay) {
    const base = document.createElement("div");
    base.className = "hall-stick";
    base.hidden = !window.matchMedia?.("(pointer: coarse)").matches;
    const knob = document.createElement("div");
    base.append(knob);
    overlay.append(base);
    let active = null;
    const moveKnob = (event) => {
      const rect = base.getBoundingClientRect();
      const radius = rect.width / 2;
      let x = (event.clientX - rect.left - radius) / radius;
      let y = (event.clientY - rect.top - radius) / radius;
      const length = Math.hypot(x, y);
      if (length > 1) [x, y] = [x / length, y / length];
      this.stick = [x, y];
      knob.style.transform = `translate(${x * radius * 0.6}px, ${y * radius * 0.6}px)`;
    };
    const release = () => {
      active = null;
      this.stick = [0, 0];
      knob.style.transform = "";
    };
    base.addEventListener("pointerdown", (event) => {
      active = event.pointerId;
      base.setPointerCapture?.(event.pointerId);
      moveKnob(event);
    });
    base.addEventListener("pointermove", (event) => event.pointerId === active && moveKnob(event));
    base.addEventListener("pointerup", release);
    base.addEventListener("pointercancel", release);
    return base;
  }
}
