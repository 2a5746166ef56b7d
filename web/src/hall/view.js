// The hall view: a three.js hall a visitor walks (desktop, touch, immersive VR), streamed from
// the hall manifest (docs/manifest.md). This module is the contract the live layer codes against:
//
//   createHallView(container, {hallId, lang, startBooth?}) -> Promise<HallView>
//   HallView: scene, camera, renderer, rig (THREE.Group holding the camera; y = 0 at the feet),
//     manifest, stats {manifestMs, firstBoothMs, firstBoothDrawnMs, boothsLoaded, boothsTotal,
//     frames, xrFrames, fps, renderer, software}, onFrame(cb(dtSeconds, timeMs)) -> unsubscribe,
//     teleport([x, y, z], yaw /* radians, 0 looks towards -z; omit to keep */, {smooth = false}),
//     getPose() -> {position, quaternion, vr, hands: null | [left, right]} (world, head),
//     highlightProduct(productId | null), reloadManifest() -> Promise<{changed}>,
//     boothById(id), addPanel(element, slot "left" | "right" | "bottom") -> remove, dispose(),
//     openProduct(productId) (the card), boothState() (LOD per booth, for tests and debugging),
//     project([x, y, z]) -> [clientX, clientY] | null. getPose().hands is null unless both
//     controllers are tracked.
//   Events (HallView is an EventTarget): "productopen" {productId}, "teleport" {position, yaw},
//     "boothloaded" {boothId, lod}, "manifest" {manifest}.
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { MeshoptDecoder } from "three/addons/libs/meshopt_decoder.module.js";
import { VRButton } from "three/addons/webxr/VRButton.js";
import { ApiError } from "../api.js";
import { ProductCard } from "./card.js";
import { Controls } from "./controls.js";
import { clampToPolygon, degrees, insidePolygon, slideInside } from "./geometry.js";
import { Hotspots, productOf } from "./hotspots.js";
import { BoothLights, EYE_HEIGHT, describeGL, makeOverlay, makeRenderer, makeRig, makeScene } from "./stage.js";
import { BoothStreamer, disposeObject, resolveUrl } from "./streamer.js";
import { XRControls } from "./xr.js";

const MANIFEST_VERSION = 1; // docs/manifest.md "Versioning": refuse versions we do not know
const STREAM_EVERY_MS = 250;
const LIGHTS_EVERY_MS = 500;
const GLIDE_SECONDS = 0.6;
const MAX_PITCH = 1.45;

async function fetchManifest(url, previousText = null) {
  // no-cache: revalidate with the ETag (a 304 gives the cached body back), never a stale copy.
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-cache" });
  const text = await response.text();
  if (!response.ok) {
    let error = { code: "http_error", message: response.statusText };
    try {
      error = JSON.parse(text).error ?? error;
    } catch {
      /* not JSON: keep the status text */
    }
    throw new ApiError(response.status, error.code, error.message);
  }
  if (text === previousText) return { text, manifest: null };
  const manifest = JSON.parse(text);
  if (manifest.schema !== "pavilion.hall-manifest" || manifest.version !== MANIFEST_VERSION) {
    throw new ApiError(0, "manifest_version", `unknown hall manifest ${manifest.schema} v${manifest.version}`);
  }
  return { text, manifest };
}

function shortestAngle(from, to) {
  return from + Math.atan2(Math.sin(to - from), Math.cos(to - from));
}

export class HallView extends EventTarget {
  constructor(container, { hallId, lang = "en" }) {
    super();
    this.container = container;
    this.hallId = hallId;
    this.lang = lang;
    this.manifestUrl = new URL(`/api/halls/${encodeURIComponent(hallId)}/manifest`, window.location.origin).href;
    this.renderer = makeRenderer();
    const gl = describeGL(this.renderer);
    // firstBoothMs: manifest response -> first booth GLB in the scene; firstBoothDrawnMs: -> the
    // end of the first frame drawn with it.
    this.stats = {
      manifestMs: null, firstBoothMs: null, firstBoothDrawnMs: null, boothsLoaded: 0, boothsTotal: 0,
      frames: 0, xrFrames: 0, fps: 0, renderer: gl.name, software: gl.software,
    };
    this.scene = makeScene();
    ({ rig: this.rig, camera: this.camera } = makeRig(1));
    this.scene.add(this.rig);
    this.pitch = 0;
    this.frameCallbacks = new Set();
    this.loader = new GLTFLoader().setMeshoptDecoder(MeshoptDecoder);
    this.boothRoot = new THREE.Group();
    this.boothRoot.name = "booths";
    this.scene.add(this.boothRoot);
    this.streamer = new BoothStreamer(this.boothRoot, this.loader, (event) => this._onStream(event));
    this.hotspots = new Hotspots(this.scene);
    this.lights = new BoothLights(this.scene, { software: gl.software });
    this.raycaster = new THREE.Raycaster();
    this.card = new ProductCard(lang);
    this.glide = null;
    this.shell = null;
    this.streaming = false;
    this._timers = { stream: 0, lights: 0, fps: 0, fpsFrames: 0, last: null };
  }

  /** Fetch the manifest and the shell, start the render loop and the booth stream. */
  async start({ startBooth = null } = {}) {
    const { text, manifest } = await fetchManifest(this.manifestUrl);
    this.stats.manifestMs = Math.round(performance.now());
    this._manifestAt = performance.now();
    this.manifestText = text;
    this.manifest = manifest;
    this._mount();
    this.streamer.setManifest(manifest, this.manifestUrl);
    this.hotspots.setBooths(manifest.booths);
    const start = manifest.booths.find((b) => b.id === startBooth)?.waypoint
      ?? manifest.spawn_points[Math.floor(Math.random() * manifest.spawn_points.length)]
      ?? manifest.entrance;
    this.teleport(start.position, degrees(start.yaw));
    // docs/manifest.md: the shell first (its far boxes stand in for every booth), then booths.
    await this._loadShell(manifest);
    this.streaming = true;
    this.streamer.update(start.position[0], start.position[2]);
    this.renderer.setAnimationLoop((time) => this._frame(time));
    return this;
  }

  onFrame(callback) {
    this.frameCallbacks.add(callback);
    return () => this.frameCallbacks.delete(callback);
  }

  /** Move the player's feet to `position` (kept on the walkable floor), facing `yaw` radians. */
  teleport(position, yaw = null, { smooth = false } = {}) {
    const [x, z] = clampToPolygon(this.manifest?.walkable, position[0], position[2]);
    const vr = this.renderer.xr.isPresenting;
    // In VR the head is somewhere in the play area: place the rig so that the head lands on the
    // target, facing `yaw`, instead of the play area's centre.
    const head = vr ? this.camera.position : new THREE.Vector3();
    const headYaw = vr ? new THREE.Euler().setFromQuaternion(this.camera.quaternion, "YXZ").y : 0;
    const rigYaw = yaw === null || yaw === undefined ? this.rig.rotation.y : yaw - headYaw;
    const offset = new THREE.Vector3(head.x, 0, head.z).applyAxisAngle(THREE.Object3D.DEFAULT_UP, rigYaw);
    const to = new THREE.Vector3(x - offset.x, 0, z - offset.z);
    if (smooth) {
      const toYaw = shortestAngle(this.rig.rotation.y, rigYaw);
      this.glide = { from: this.rig.position.clone(), to, fromYaw: this.rig.rotation.y, toYaw, t: 0 };
    } else {
      this.glide = null;
      this.rig.position.copy(to);
      this.rig.rotation.y = rigYaw;
    }
    if (this.streaming) this.streamer.update(x, z);
    this.dispatchEvent(new CustomEvent("teleport", { detail: { position: [x, 0, z], yaw: yaw ?? this.rig.rotation.y } }));
  }

  getPose() {
    const position = this.camera.getWorldPosition(new THREE.Vector3());
    const quaternion = this.camera.getWorldQuaternion(new THREE.Quaternion());
    const vr = this.renderer.xr.isPresenting;
    return { position: position.toArray(), quaternion: quaternion.toArray(), vr, hands: vr ? this.xr.handPoses() : null };
  }

  highlightProduct(productId) {
    this.hotspots.set(productId);
  }

  /** Re-fetch the manifest; reload the booths (and the shell) whose GLBs changed. */
  reloadManifest() {
    // One at a time: the live layer reloads on every booth.updated, and they come in bursts.
    this._reloading = (this._reloading ?? Promise.resolve()).catch(() => {}).then(() => this._reload());
    return this._reloading;
  }

  async _reload() {
    const { text, manifest } = await fetchManifest(this.manifestUrl, this.manifestText);
    if (!manifest || this.disposed) return { changed: false };
    const shellChanged = manifest.shell.key !== this.manifest.shell.key;
    this.manifestText = text;
    this.manifest = manifest;
    this.streamer.setManifest(manifest, this.manifestUrl);
    if (shellChanged) await this._loadShell(manifest);
    this.hotspots.setBooths(manifest.booths);
    const head = this.camera.getWorldPosition(new THREE.Vector3());
    this.streamer.update(head.x, head.z);
    this.dispatchEvent(new CustomEvent("manifest", { detail: { manifest } }));
    return { changed: true };
  }

  boothById(id) {
    return this.manifest?.booths.find((booth) => booth.id === id);
  }

  addPanel(element, slot = "left") {
    const target = this.slots[slot];
    if (!target) throw new Error(`no panel slot ${slot}: use left, right or bottom`);
    target.append(element);
    return () => element.remove();
  }

  /** Open a product's card (as a click on it does). */
  openProduct(productId) {
    this.card.show(productId);
    this.dispatchEvent(new CustomEvent("productopen", { detail: { productId } }));
  }

  boothState() {
    return this.streamer.state();
  }

  /** Screen position (CSS pixels, relative to the viewport) of a hall-space point; null behind. */
  project(point) {
    this.camera.updateMatrixWorld();
    const v = new THREE.Vector3(...point).project(this.camera);
    if (v.z > 1) return null;
    const rect = this.renderer.domElement.getBoundingClientRect();
    return [rect.left + ((v.x + 1) / 2) * rect.width, rect.top + ((1 - v.y) / 2) * rect.height];
  }

  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    this.renderer.setAnimationLoop(null);
    this.renderer.xr.getSession()?.end().catch(() => {});
    this._resize?.disconnect();
    document.removeEventListener("pointerlockchange", this._lockChange);
    this.controls?.dispose();
    this.xr?.dispose();
    this.streamer.dispose();
    this.hotspots.dispose();
    this.lights.dispose();
    if (this.shell) disposeObject(this.shell);
    this.renderer.dispose();
    this.renderer.forceContextLoss();
    this.container.replaceChildren();
  }

  _mount() {
    const { overlay, slots, crosshair } = makeOverlay();
    this.slots = slots;
    slots.right.append(this.card.element);
    this.container.classList.add("hall-view");
    this.container.replaceChildren(this.renderer.domElement, overlay);
    this._resize = new ResizeObserver(() => this._fit());
    this._resize.observe(this.container);
    this._fit();
    this._lockChange = () => crosshair.classList.toggle("on", document.pointerLockElement === this.renderer.domElement);
    document.addEventListener("pointerlockchange", this._lockChange);
    this.controls = new Controls(this.renderer.domElement, overlay, this._player());
    this.xr = new XRControls(this.renderer, this.rig, this.scene, {
      teleportFromArc: (point) => this.teleport(point),
      walkable: (x, z) => insidePolygon(this.manifest.walkable, x, z),
      snapTurn: (angle) => this._snapTurn(angle),
    });
    this.renderer.xr.addEventListener("sessionend", () => this._leaveXR());
    this._offerVR(overlay);
  }

  _offerVR(overlay) {
    if (!navigator.xr) return;
    navigator.xr.isSessionSupported("immersive-vr").then(
      (supported) => {
        if (!supported || this.disposed) return;
        const button = VRButton.createButton(this.renderer);
        button.classList.add("hall-vr-button");
        overlay.append(button);
      },
      () => {},
    );
  }

  _player() {
    return {
      enabled: () => !this.renderer.xr.isPresenting,
      look: (dYaw, dPitch) => {
        this.rig.rotation.y += dYaw;
        this.pitch = Math.max(-MAX_PITCH, Math.min(MAX_PITCH, this.pitch + dPitch));
        this.camera.rotation.x = this.pitch;
      },
      walk: (ahead, side) => {
        this.glide = null;
        const yaw = this.rig.rotation.y;
        const dx = -Math.sin(yaw) * ahead + Math.cos(yaw) * side;
        const dz = -Math.cos(yaw) * ahead - Math.sin(yaw) * side;
        const from = [this.rig.position.x, this.rig.position.z];
        const [x, z] = slideInside(this.manifest.walkable, from, [from[0] + dx, from[1] + dz]);
        this.rig.position.x = x;
        this.rig.position.z = z;
      },
      pick: (clientX, clientY) => {
        const rect = this.renderer.domElement.getBoundingClientRect();
        const ndc = new THREE.Vector2(((clientX - rect.left) / rect.width) * 2 - 1, -((clientY - rect.top) / rect.height) * 2 + 1);
        return this._act(this._pick(ndc));
      },
      pickCentre: () => this._act(this._pick(new THREE.Vector2(0, 0))),
    };
  }

  /** What is under a point of the view: a product, a walkable floor point, or nothing. */
  _pick(ndc) {
    this.raycaster.setFromCamera(ndc, this.camera);
    const targets = [this.hotspots.group, ...this.streamer.objects(), ...(this.shell ? [this.shell] : [])];
    const hits = this.raycaster.intersectObjects(targets, true);
    const hit = hits.find((h) => h.object.visible && !h.object.isLine);
    if (!hit) return null;
    const productId = productOf(hit.object);
    if (productId) return { kind: "product", productId };
    const normal = hit.face ? hit.face.normal.clone().transformDirection(hit.object.matrixWorld) : null;
    const floor = hit.point.y < 0.3 && (!normal || normal.y > 0.7);
    if (floor && insidePolygon(this.manifest.walkable, hit.point.x, hit.point.z)) {
      return { kind: "floor", point: [hit.point.x, 0, hit.point.z] };
    }
    return null;
  }

  _act(target) {
    if (!target) return false;
    if (target.kind === "product") this.openProduct(target.productId);
    else this.teleport(target.point, null, { smooth: true });
    return true;
  }

  _snapTurn(angle) {
    // Turn about the head, not the rig's origin: the visitor stays where they stand.
    const head = this.camera.getWorldPosition(new THREE.Vector3());
    const offset = this.rig.position.clone().sub(head).setY(0).applyAxisAngle(THREE.Object3D.DEFAULT_UP, angle);
    this.rig.position.set(head.x + offset.x, this.rig.position.y, head.z + offset.z);
    this.rig.rotation.y += angle;
  }

  _leaveXR() {
    this.camera.position.set(0, EYE_HEIGHT, 0);
    this.camera.rotation.set(this.pitch, 0, 0, "YXZ");
    this._fit();
  }

  async _loadShell(manifest) {
    const gltf = await this.loader.loadAsync(resolveUrl(manifest.shell, this.manifestUrl));
    if (this.disposed) return disposeObject(gltf.scene);
    gltf.scene.name = "shell";
    if (this.shell) {
      this.scene.remove(this.shell);
      disposeObject(this.shell);
    }
    this.shell = gltf.scene;
    this.scene.add(this.shell);
    this.streamer.setShell(this.shell);
  }

  _onStream(event) {
    const { progress } = this.streamer;
    this.stats.boothsLoaded = progress.boothsLoaded;
    this.stats.boothsTotal = progress.boothsTotal;
    if (event.type !== "booth") return;
    if (this.stats.firstBoothMs === null) this.stats.firstBoothMs = Math.round(this.streamer.firstBoothAt - this._manifestAt);
    this.dispatchEvent(new CustomEvent("boothloaded", { detail: { boothId: event.entry.booth.id, lod: event.entry.lod } }));
  }

  _fit() {
    if (this.renderer.xr.isPresenting) return;
    const width = Math.max(1, this.container.clientWidth);
    const height = Math.max(1, this.container.clientHeight);
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
  }

  _frame(time) {
    const timers = this._timers;
    // At most a quarter second per frame: a slow device still walks at about the right speed, a
    // tab coming back from the background does not jump.
    const dt = timers.last === null ? 0 : Math.min(0.25, (time - timers.last) / 1000);
    timers.last = time;
    this.controls.update(dt);
    this._glide(dt);
    this.xr.update();
    const head = this.camera.getWorldPosition(new THREE.Vector3());
    if (time - timers.stream > STREAM_EVERY_MS) {
      timers.stream = time;
      // While gliding, load for where the visitor is going, not for the aisles on the way.
      const at = this.glide ? this.glide.to.clone().add(head).sub(this.rig.position) : head;
      this.streamer.update(at.x, at.z);
    }
    if (time - timers.lights > LIGHTS_EVERY_MS) {
      timers.lights = time;
      this.lights.update(this.streamer.lightHints(), head.x, head.z);
    }
    this.hotspots.update(time, (id) => this.streamer.findProduct(id));
    for (const callback of this.frameCallbacks) {
      try {
        callback(dt, time);
      } catch (error) {
        // One broken frame callback must not stop the hall from drawing.
        console.error("frame callback failed", error);
      }
    }
    this.renderer.render(this.scene, this.camera);
    if (this.stats.firstBoothMs !== null && this.stats.firstBoothDrawnMs === null) {
      this.stats.firstBoothDrawnMs = Math.round(performance.now() - this._manifestAt);
    }
    this._count(time);
  }

  _glide(dt) {
    const glide = this.glide;
    if (!glide) return;
    glide.t = Math.min(1, glide.t + dt / GLIDE_SECONDS);
    const s = glide.t * glide.t * (3 - 2 * glide.t);
    this.rig.position.lerpVectors(glide.from, glide.to, s);
    this.rig.rotation.y = glide.fromYaw + (glide.toYaw - glide.fromYaw) * s;
    if (glide.t >= 1) this.glide = null;
  }

  _count(time) {
    const stats = this.stats;
    const timers = this._timers;
    stats.frames += 1;
    if (this.renderer.xr.isPresenting) stats.xrFrames += 1;
    timers.fpsFrames += 1;
    if (time - timers.fps >= 1000) {
      stats.fps = Math.round((timers.fpsFrames * 1000) / (time - timers.fps));
      timers.fps = time;
      timers.fpsFrames = 0;
    }
  }
}

/**
 * Build the hall view in `container` and start streaming the hall.
 *
 * @param {HTMLElement} container emptied, then holds the canvas and the overlay
 * @param {{hallId: string, lang?: string, startBooth?: string}} options startBooth: begin at
 *   that booth's waypoint instead of a spawn point
 * @returns {Promise<HallView>} once the manifest and the shell are in (booths keep streaming)
 * @throws {ApiError} the manifest could not be fetched (manifest_not_found, hall_not_found, ...)
 */
export async function createHallView(container, { hallId, lang = "en", startBooth = null }) {
  const view = new HallView(container, { hallId, lang });
  try {
    return await view.start({ startBooth });
  } catch (error) {
    view.dispose();
    throw error;
  }
}
