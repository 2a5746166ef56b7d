// Other visitors in the 3D hall: a head with a visor showing where it looks, a body, two hands
// when tracked, a name tag (canvas text, never HTML); far records as a plain marker.
//
// Near records are drawn INTERPOLATION_MS in the past, between the two received poses around that
// moment: frames arrive at 15 Hz (every 67 ms), so 100 ms keeps one pose ahead most of the time
// and movement looks continuous. Far records arrive at 1.5 Hz and are eased towards instead.
import * as THREE from "three";
import { FLAG_SPEAKING, FLAG_TELEPORTED } from "./frames.js";

export const INTERPOLATION_MS = 100;
const MAX_SAMPLES = 8;
const NEAR_STALE_MS = 500; // a near buffer older than this is dropped, not interpolated from
const HIDE_AFTER_MS = 15_000; // not in any frame for this long: hidden until seen again
const FAR_EASE_PER_S = 4;
const HEAD_RADIUS = 0.13;
const TAG_HEIGHT = 0.34;
const TORSO_HEIGHT = 0.62;
const BODY_OPACITY = 0.85;
const FADE_FROM = 0.4; // metres from the viewer's eyes: fully faded (to 20%) ...
const FADE_TO = 1.4; // ... to fully opaque
const TAG_FULL_SIZE_AT = 3; // metres: nearer tags shrink (to 30% at 0.9 m), keeping the size they have at 3 m

const geometries = {
  head: new THREE.SphereGeometry(HEAD_RADIUS, 16, 12),
  visor: new THREE.BoxGeometry(0.2, 0.06, 0.06),
  body: new THREE.CylinderGeometry(0.19, 0.13, 1, 12),
  hand: new THREE.BoxGeometry(0.07, 0.04, 0.11),
  marker: new THREE.CylinderGeometry(0.22, 0.22, 1.7, 8),
  arrow: new THREE.ConeGeometry(0.12, 0.3, 6),
};
const visorMaterial = new THREE.MeshBasicMaterial({ color: 0x111318 });

/** The heading about +y (three.js Euler order YXZ) of a quaternion [x, y, z, w]; 0 looks to -z. */
export function yawOf([x, y, z, w]) {
  return Math.atan2(2 * (w * y + x * z), 1 - 2 * (x * x + y * y));
}

export function colourOf(id) {
  return new THREE.Color().setHSL((id * 0.61803398875) % 1, 0.65, 0.55);
}

/** A sprite showing lines of text drawn with fillText (text from others stays inert). */
export function textSprite(lines, { width = 512, height = 128, scale = 1, background = "rgba(16,20,28,0.78)" } = {}) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const texture = new THREE.CanvasTexture(canvas);
  texture.colorSpace = THREE.SRGBColorSpace;
  const material = new THREE.SpriteMaterial({ map: texture, transparent: true, depthWrite: false });
  const sprite = new THREE.Sprite(material);
  sprite.scale.set(scale * (width / height) * 0.25, scale * 0.25, 1);
  sprite.userData.draw = (next) => {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    if (background) {
      ctx.fillStyle = background;
      ctx.beginPath();
      ctx.roundRect(4, 4, width - 8, height - 8, 24);
      ctx.fill();
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    const [first, second] = next;
    ctx.fillStyle = "#ffffff";
    ctx.font = `600 ${second ? 46 : 54}px system-ui, sans-serif`;
    ctx.fillText(String(first ?? "").slice(0, 40), width / 2, second ? height * 0.38 : height / 2, width - 24);
    if (second) {
      ctx.fillStyle = "#ffd36b";
      ctx.font = "500 32px system-ui, sans-serif";
      ctx.fillText(String(second).slice(0, 48), width / 2, height * 0.76, width - 24);
    }
    texture.needsUpdate = true;
  };
  sprite.userData.draw(lines);
  return sprite;
}

class Avatar {
  constructor(id, scene) {
    this.id = id;
    this.colour = colourOf(id);
    this.root = new THREE.Group();
    this.root.name = `avatar-${id}`;
    this.root.userData.avatarId = id;
    this.headMaterial = new THREE.MeshLambertMaterial({ color: this.colour, emissive: 0x000000, transparent: true });
    this.bodyMaterial = new THREE.MeshLambertMaterial({ color: this.colour, transparent: true, opacity: BODY_OPACITY });
    this.near = new THREE.Group();
    this.head = new THREE.Mesh(geometries.head, this.headMaterial);
    const visor = new THREE.Mesh(geometries.visor, visorMaterial);
    visor.position.set(0, 0.01, -HEAD_RADIUS + 0.02); // the face looks down -z, as a camera does
    this.head.add(visor);
    this.body = new THREE.Mesh(geometries.body, this.bodyMaterial);
    this.hands = [0, 1].map(() => new THREE.Mesh(geometries.hand, this.headMaterial));
    this.tag = textSprite(["", ""], { scale: 0.75 });
    this.tagSize = this.tag.scale.clone();
    this.near.add(this.head, this.body, this.tag, ...this.hands);
    this.far = new THREE.Group();
    const marker = new THREE.Mesh(geometries.marker, this.bodyMaterial);
    marker.position.y = 0.85;
    const arrow = new THREE.Mesh(geometries.arrow, this.headMaterial);
    arrow.rotation.x = -Math.PI / 2; // the cone's tip points to -z: the heading
    arrow.position.set(0, 1.75, -0.25);
    this.farArrow = arrow;
    this.far.add(marker, arrow);
    this.root.add(this.near, this.far);
    scene.add(this.root);
    this.samples = [];
    this.mode = null; // "near" | "far"
    this.lastSeen = 0;
    this.farTarget = null;
    this.farNow = null;
    this.tagText = null;
    this.flags = 0;
    this.position = new THREE.Vector3();
    this.quaternion = new THREE.Quaternion();
    this.root.visible = false;
  }

  label(member, extra) {
    const name = member?.name ?? `#${this.id}`;
    const second = [member?.role === "guide" || member?.role === "admin" ? "guide" : null, member?.away ? "away" : null, extra]
      .filter(Boolean)
      .join(" · ");
    const key = `${name}\u0000${second}`;
    if (key === this.tagText) return;
    this.tagText = key;
    this.tag.userData.draw([name, second]);
  }

  nearRecord(record, now) {
    if (this.mode !== "near" || record.flags & FLAG_TELEPORTED || now - (this.samples.at(-1)?.t ?? 0) > NEAR_STALE_MS) {
      this.samples = [];
    }
    this.samples.push({
      t: now,
      position: new THREE.Vector3(...record.position),
      quaternion: new THREE.Quaternion(...record.rotation),
      hands: record.hands,
    });
    if (this.samples.length > MAX_SAMPLES) this.samples.shift();
    this.flags = record.flags;
    this.mode = "near";
    this.lastSeen = now;
  }

  farRecord(record, now) {
    const target = { x: record.position[0], z: record.position[1], yaw: record.yaw };
    if (this.mode !== "far" || !this.farNow || record.flags & FLAG_TELEPORTED) this.farNow = { ...target };
    this.farTarget = target;
    this.flags = record.flags;
    this.mode = "far";
    this.lastSeen = now;
  }

  update(now, dt, eye) {
    const visible = this.mode !== null && now - this.lastSeen < HIDE_AFTER_MS;
    this.root.visible = visible;
    if (!visible) return;
    this.near.visible = this.mode === "near";
    this.far.visible = this.mode === "far";
    if (this.mode === "near") this._updateNear(now);
    else this._updateFar(dt);
    if (eye) this._nearEye(eye);
    this.headMaterial.emissive.setHex(this.flags & FLAG_SPEAKING ? 0x333333 : 0x000000);
  }

  _updateNear(now) {
    const at = now - INTERPOLATION_MS;
    const samples = this.samples;
    let a = samples[0];
    let b = samples[0];
    for (let i = 0; i < samples.length - 1; i += 1) {
      if (samples[i + 1].t >= at) {
        [a, b] = [samples[i], samples[i + 1]];
        break;
      }
      [a, b] = [samples[i + 1], samples[i + 1]];
    }
    const span = b.t - a.t;
    const alpha = span > 0 ? THREE.MathUtils.clamp((at - a.t) / span, 0, 1) : 1;
    this.position.lerpVectors(a.position, b.position, alpha);
    this.quaternion.slerpQuaternions(a.quaternion, b.quaternion, alpha);
    this.head.position.copy(this.position);
    this.head.quaternion.copy(this.quaternion);
    const yaw = yawOf([this.quaternion.x, this.quaternion.y, this.quaternion.z, this.quaternion.w]);
    // A torso under the head (not down to the floor: seated and short visitors stay believable).
    const top = this.position.y - HEAD_RADIUS - 0.08;
    const torso = THREE.MathUtils.clamp(top, 0.2, TORSO_HEIGHT);
    this.body.scale.set(1, torso, 1);
    this.body.position.set(this.position.x, top - torso / 2, this.position.z);
    this.body.rotation.set(0, yaw, 0);
    this.tag.position.set(this.position.x, this.position.y + TAG_HEIGHT, this.position.z);
    const hands = b.hands;
    this.hands.forEach((hand, i) => {
      hand.visible = Boolean(hands);
      if (!hands) return;
      hand.position.set(...hands[i].offset).add(this.position);
      hand.quaternion.set(...hands[i].rotation);
    });
  }

  /** Someone standing right in front of the viewer fades, and name tags shrink up close. */
  _nearEye(eye) {
    const distance = Math.hypot(this.position.x - eye.x, this.position.y - eye.y, this.position.z - eye.z);
    const fade = THREE.MathUtils.clamp((distance - FADE_FROM) / (FADE_TO - FADE_FROM), 0.2, 1);
    this.headMaterial.opacity = fade;
    this.headMaterial.depthWrite = fade === 1;
    this.bodyMaterial.opacity = BODY_OPACITY * fade;
    // Sprites keep their size in metres, so a tag next to the viewer would fill the view.
    this.tag.scale.copy(this.tagSize).multiplyScalar(THREE.MathUtils.clamp(distance / TAG_FULL_SIZE_AT, 0.3, 1));
  }

  _updateFar(dt) {
    const k = 1 - Math.exp(-FAR_EASE_PER_S * dt);
    const now = this.farNow;
    const target = this.farTarget;
    now.x += (target.x - now.x) * k;
    now.z += (target.z - now.z) * k;
    // Turn the short way round.
    const turn = Math.atan2(Math.sin(target.yaw - now.yaw), Math.cos(target.yaw - now.yaw));
    now.yaw += turn * k;
    this.far.position.set(now.x, 0, now.z);
    this.far.rotation.set(0, now.yaw, 0);
    this.position.set(now.x, 1.6, now.z);
    this.quaternion.setFromEuler(new THREE.Euler(0, now.yaw, 0, "YXZ"));
  }

  dispose() {
    this.root.removeFromParent();
    this.tag.material.map.dispose();
    this.tag.material.dispose();
    this.headMaterial.dispose();
    this.bodyMaterial.dispose();
  }
}

export class Avatars {
  constructor(scene) {
    this.scene = scene;
    this.byId = new Map();
    this.me = null;
    this.reactions = [];
  }

  _avatar(id) {
    let avatar = this.byId.get(id);
    if (!avatar) {
      avatar = new Avatar(id, this.scene);
      this.byId.set(id, avatar);
    }
    return avatar;
  }

  /** Apply a decoded 0x02 frame received at `now` (performance.now() ms); own id skipped. */
  applyFrame(frame, now) {
    for (const record of frame.near) if (record.id !== this.me) this._avatar(record.id).nearRecord(record, now);
    for (const record of frame.far) if (record.id !== this.me) this._avatar(record.id).farRecord(record, now);
  }

  /** Redraw name tags: `members` the roster, `extras` id -> a second-line note (hand raised). */
  label(members, extras = new Map()) {
    for (const [id, avatar] of this.byId) avatar.label(members.get(id), extras.get(id));
  }

  remove(id) {
    this.byId.get(id)?.dispose();
    this.byId.delete(id);
  }

  /** Show a reaction above a visitor for two seconds. */
  react(id, emoji, now) {
    const avatar = this.byId.get(id);
    if (!avatar || !avatar.root.visible) return;
    const sprite = textSprite([emoji], { width: 128, height: 128, scale: 1.2, background: null });
    sprite.position.copy(avatar.position).add(new THREE.Vector3(0, TAG_HEIGHT + 0.35, 0));
    this.scene.add(sprite);
    this.reactions.push({ sprite, until: now + 2000 });
  }

  /** Draw every avatar at `now` (ms); `eye` the viewer's head (Vector3) for fading and tag sizes. */
  update(now, dt, eye = null) {
    for (const avatar of this.byId.values()) avatar.update(now, dt, eye);
    this.reactions = this.reactions.filter(({ sprite, until }) => {
      if (now < until) {
        sprite.position.y += dt * 0.3;
        return true;
      }
      sprite.removeFromParent();
      sprite.material.map.dispose();
      sprite.material.dispose();
      return false;
    });
  }

  /** The drawn head pose of a visitor: {position: Vector3, yaw, mode}, or null when not seen. */
  pose(id) {
    const avatar = this.byId.get(id);
    if (!avatar || !avatar.root.visible) return null;
    const q = avatar.quaternion;
    return { position: avatar.position.clone(), yaw: yawOf([q.x, q.y, q.z, q.w]), mode: avatar.mode };
  }

  /** For tests and tools: every avatar as plain data. */
  describe() {
    return [...this.byId.values()].map((a) => ({
      id: a.id,
      mode: a.mode,
      visible: a.root.visible,
      position: a.position.toArray().map((v) => Math.round(v * 1000) / 1000),
      received: a.samples.at(-1)?.position.toArray() ?? (a.farTarget ? [a.farTarget.x, 1.6, a.farTarget.z] : null),
      hands: Boolean(a.samples.at(-1)?.hands),
      speaking: Boolean(a.flags & FLAG_SPEAKING),
    }));
  }

  dispose() {
    for (const id of [...this.byId.keys()]) this.remove(id);
    for (const { sprite } of this.reactions) sprite.removeFromParent();
    this.reactions = [];
  }
}
