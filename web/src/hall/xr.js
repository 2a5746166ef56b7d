// Immersive VR: controllers (a ray and a small grip block each), a teleport arc on the trigger
// (press to aim, release to go) and 30° snap turns on the thumbstick.
import * as THREE from "three";

const ARC_SPEED = 7; // m/s the arc leaves the controller at
const GRAVITY = 9.8;
const ARC_SEGMENTS = 32;
const SNAP = Math.PI / 6; // 30°
const SNAP_ON = 0.7; // thumbstick x beyond which a snap turn fires
const SNAP_OFF = 0.3; // ... and back within which the next one may fire
const VALID = new THREE.Color(0x33dd66);
const INVALID = new THREE.Color(0xdd3333);

/**
 * Where a parabola from `origin` along `direction` (unit) meets the floor y = 0, and its points.
 *
 * @returns {{point: THREE.Vector3, points: THREE.Vector3[]} | null} null when it never comes down
 */
export function arcToFloor(origin, direction, speed = ARC_SPEED) {
  const vy = direction.y * speed;
  // origin.y + vy t - g t² / 2 = 0, the later root.
  const disc = vy * vy + 2 * GRAVITY * origin.y;
  if (origin.y <= 0 || disc < 0) return null;
  const t = (vy + Math.sqrt(disc)) / GRAVITY;
  const points = [];
  for (let i = 0; i <= ARC_SEGMENTS; i += 1) {
    const s = (t * i) / ARC_SEGMENTS;
    points.push(new THREE.Vector3(
      origin.x + direction.x * speed * s,
      origin.y + vy * s - (GRAVITY * s * s) / 2,
      origin.z + direction.z * speed * s,
    ));
  }
  return { point: points[ARC_SEGMENTS].clone().setY(0), points };
}

function controllerModel() {
  const group = new THREE.Group();
  const ray = new THREE.Line(
    new THREE.BufferGeometry().setFromPoints([new THREE.Vector3(0, 0, 0), new THREE.Vector3(0, 0, -1)]),
    new THREE.LineBasicMaterial({ color: 0xffffff, transparent: true, opacity: 0.6 }),
  );
  ray.scale.z = 0.6;
  group.add(ray);
  return group;
}

function gripModel() {
  return new THREE.Mesh(new THREE.BoxGeometry(0.04, 0.04, 0.12), new THREE.MeshStandardMaterial({ color: 0x30343a, roughness: 0.6 }));
}

/**
 * @param {THREE.WebGLRenderer} renderer with xr.enabled
 * @param {THREE.Group} rig the player's rig (controllers are added to it)
 * @param {object} player teleportFromArc([x, 0, z]) -> void; walkable(x, z) -> bool; snapTurn(radians)
 */
export class XRControls {
  constructor(renderer, rig, scene, player) {
    this.renderer = renderer;
    this.player = player;
    this.hands = [];
    this.aiming = null;
    this.snapArmed = true;
    this.lastTarget = null;
    for (const index of [0, 1]) this.hands.push(this._controller(index, rig));
    this.arc = this._makeArc();
    scene.add(this.arc);
  }

  /** Per XR frame: follow the aiming controller's arc, read the thumbsticks. */
  update() {
    if (!this.renderer.xr.isPresenting) {
      this.arc.visible = false;
      return;
    }
    this._updateArc();
    this._snapTurn();
  }

  /** World poses of the [left, right] grips, or null unless both are tracked. */
  handPoses() {
    const byHand = { left: null, right: null };
    for (const hand of this.hands) {
      if (!hand.handedness || !hand.grip.visible) continue;
      const position = hand.grip.getWorldPosition(new THREE.Vector3());
      const quaternion = hand.grip.getWorldQuaternion(new THREE.Quaternion());
      byHand[hand.handedness] = { position: position.toArray(), quaternion: quaternion.toArray() };
    }
    return byHand.left && byHand.right ? [byHand.left, byHand.right] : null;
  }

  dispose() {
    this.arc.removeFromParent();
    for (const hand of this.hands) {
      hand.ray.removeFromParent();
      hand.grip.removeFromParent();
    }
  }

  _controller(index, rig) {
    const hand = {
      ray: this.renderer.xr.getController(index),
      grip: this.renderer.xr.getControllerGrip(index),
      handedness: null,
      source: null,
    };
    hand.ray.add(controllerModel());
    hand.grip.add(gripModel());
    hand.ray.addEventListener("connected", (event) => {
      hand.handedness = event.data.handedness;
      hand.source = event.data;
    });
    hand.ray.addEventListener("disconnected", () => {
      hand.handedness = null;
      hand.source = null;
      if (this.aiming === hand) this.aiming = null;
    });
    hand.ray.addEventListener("selectstart", () => (this.aiming = hand));
    hand.ray.addEventListener("selectend", () => this._release(hand));
    rig.add(hand.ray, hand.grip);
    return hand;
  }

  _release(hand) {
    if (this.aiming !== hand) return;
    this.aiming = null;
    this.arc.visible = false;
    const target = this._aim(hand);
    if (target && target.valid) {
      this.lastTarget = target.point.toArray();
      this.player.teleportFromArc(this.lastTarget);
    }
  }

  _aim(hand) {
    hand.ray.updateMatrixWorld(true);
    const origin = new THREE.Vector3().setFromMatrixPosition(hand.ray.matrixWorld);
    const direction = new THREE.Vector3(0, 0, -1).transformDirection(hand.ray.matrixWorld);
    const arc = arcToFloor(origin, direction);
    if (!arc) return null;
    return { ...arc, valid: this.player.walkable(arc.point.x, arc.point.z) };
  }

  _updateArc() {
    const target = this.aiming ? this._aim(this.aiming) : null;
    this.arc.visible = Boolean(target);
    if (!target) return;
    const [line, marker] = this.arc.children;
    line.geometry.setFromPoints(target.points);
    const colour = target.valid ? VALID : INVALID;
    line.material.color.copy(colour);
    marker.material.color.copy(colour);
    marker.position.copy(target.point).setY(0.02);
  }

  _snapTurn() {
    let x = 0;
    for (const hand of this.hands) {
      const axes = hand.source?.gamepad?.axes ?? [];
      // xr-standard mapping: axes 2 and 3 are the thumbstick (0 and 1 the touchpad).
      const value = axes.length >= 4 ? axes[2] : (axes[0] ?? 0);
      if (Math.abs(value) > Math.abs(x)) x = value;
    }
    if (this.snapArmed && Math.abs(x) > SNAP_ON) {
      this.snapArmed = false;
      // Pushing right turns right: clockwise seen from above, a negative yaw.
      this.player.snapTurn(x > 0 ? -SNAP : SNAP);
    } else if (Math.abs(x) < SNAP_OFF) {
      this.snapArmed = true;
    }
  }

  _makeArc() {
    const group = new THREE.Group();
    group.name = "teleport arc";
    const line = new THREE.Line(new THREE.BufferGeometry(), new THREE.LineBasicMaterial({ color: VALID }));
    line.frustumCulled = false;
    const marker = new THREE.Mesh(
      new THREE.RingGeometry(0.2, 0.3, 32).rotateX(-Math.PI / 2),
      new THREE.MeshBasicMaterial({ color: VALID, side: THREE.DoubleSide }),
    );
    group.add(line, marker);
    group.visible = false;
    return group;
  }
}
