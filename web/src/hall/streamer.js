// Booth streaming: load each booth's GLB nearest-first, at the LOD its distance needs, and swap
// LODs as the visitor moves (docs/manifest.md "Far boxes and loading").
//
// Until a booth's first GLB is in the scene, the shell's far box stands in for it; the box is
// hidden when the GLB arrives. A booth keeps its current GLB until the next one is ready, so a
// LOD swap or a reloaded manifest never leaves a hole.
import * as THREE from "three";
import { chooseLod, degrees, distanceToBounds } from "./geometry.js";

// Parallel GLB loads: enough to keep a loopback connection busy, few enough that the nearest
// booths are not starved by far ones (each parse also takes the main thread for a moment).
const MAX_LOADS = 4;
const RETRY_MS = 2000;
const ZERO = new THREE.Matrix4().makeScale(0, 0, 0);

export function resolveUrl(glb, base) {
  return glb.url || new URL(glb.key, base).href;
}

/** Free a subtree's GPU resources (geometries, materials and their textures). */
export function disposeObject(root) {
  root.traverse((node) => {
    if (!node.isMesh && !node.isLine && !node.isPoints && !node.isSprite) return;
    node.geometry?.dispose();
    for (const material of [node.material].flat()) {
      if (!material) continue;
      for (const value of Object.values(material)) if (value?.isTexture) value.dispose();
      material.dispose();
    }
  });
}

function farBoxes(shell) {
  let found = null;
  shell?.getObjectByName("far_booths")?.traverse((node) => {
    if (node.isInstancedMesh) found = node;
  });
  return found;
}

function indexBooth(entry, object) {
  // Products are nodes whose extras.product_id names them; lights are hints on the booth's root.
  entry.products = new Map();
  entry.lightHints = [];
  object.updateMatrixWorld(true);
  object.traverse((node) => {
    const id = node.userData?.product_id;
    if (id) {
      node.userData.boothId = entry.booth.id;
      entry.products.set(id, node);
    }
    for (const hint of node.userData?.lights ?? []) {
      if (hint.type !== "spot") continue;
      entry.lightHints.push({
        position: new THREE.Vector3(...hint.position).applyMatrix4(node.matrixWorld),
        target: new THREE.Vector3(...hint.target).applyMatrix4(node.matrixWorld),
        angle: hint.angle,
        intensity: hint.intensity,
      });
    }
  });
}

export class BoothStreamer {
  /**
   * @param {THREE.Object3D} root where booth GLBs are added
   * @param {GLTFLoader} loader a GLTFLoader with the meshopt decoder set
   * @param {(event: {type: string, entry?: object}) => void} onChange "booth" when a GLB was
   *   added, "progress" while bytes arrive
   */
  constructor(root, loader, onChange = () => {}) {
    this.root = root;
    this.loader = loader;
    this.onChange = onChange;
    this.entries = new Map();
    this.boxes = null;
    this.base = window.location.href;
    this.inFlight = 0;
    this.position = [0, 0];
    this.firstBoothAt = null;
    this.progress = { boothsLoaded: 0, boothsTotal: 0, bytesLoaded: 0, bytesTotal: 0, done: false };
    this.disposed = false;
  }

  /** Use this shell's far boxes (instance i is booths[i]); hide those of booths already loaded. */
  setShell(shell) {
    this.boxes = farBoxes(shell);
    for (const entry of this.entries.values()) if (entry.object) this._hideBox(entry.index);
  }

  /** Follow a (new) manifest: keep loaded booths whose GLBs did not change, drop removed ones. */
  setManifest(manifest, base) {
    this.base = base;
    const next = new Map();
    manifest.booths.forEach((booth, index) => {
      const entry = this.entries.get(booth.id) ?? { object: null, lod: null, key: null, loading: null, failures: 0, retryAt: 0 };
      Object.assign(entry, { booth, index, removed: false });
      if (entry.object) this._place(entry.object, booth);
      next.set(booth.id, entry);
    });
    for (const [id, entry] of this.entries) {
      if (next.has(id)) continue;
      entry.removed = true;
      this._drop(entry);
    }
    this.entries = next;
    this.progress.boothsTotal = next.size;
    this._count();
  }

  /** Plan loads for a visitor standing at (x, z): nearest first, missing booths before LOD swaps. */
  update(x, z) {
    this.position = [x, z];
    if (this.disposed) return;
    const now = performance.now();
    const wanted = [];
    for (const entry of this.entries.values()) {
      entry.distance = distanceToBounds(entry.booth.bounds, x, z);
      if (entry.loading || entry.retryAt > now) continue;
      const lod = chooseLod(entry.distance, entry.lod);
      if (entry.booth.lods[lod]?.key !== entry.key) wanted.push({ entry, lod });
    }
    if (this.progress.bytesTotal === 0) this._plan(wanted);
    wanted.sort((a, b) => Number(Boolean(a.entry.object)) - Number(Boolean(b.entry.object)) || a.entry.distance - b.entry.distance);
    for (const { entry, lod } of wanted) {
      if (this.inFlight >= MAX_LOADS) break;
      this._load(entry, lod);
    }
  }

  /** What each booth shows: [{id, number, lod, key, loading, distance}]. */
  state() {
    return [...this.entries.values()].map((e) => ({
      id: e.booth.id,
      number: e.booth.number,
      lod: e.lod,
      key: e.key,
      loading: e.loading?.lod ?? null,
      distance: Math.round((e.distance ?? 0) * 100) / 100,
    }));
  }

  /** The loaded node of a product (its extras.product_id), or null while its booth is not loaded. */
  findProduct(productId) {
    for (const entry of this.entries.values()) {
      const node = entry.products?.get(productId);
      if (node) return node;
    }
    return null;
  }

  /** Loaded booth roots, for raycasting. */
  objects() {
    return [...this.entries.values()].filter((e) => e.object).map((e) => e.object);
  }

  /** The spot-light hints of the loaded booths, in hall space, each with its booth's distance. */
  lightHints() {
    const hints = [];
    for (const entry of this.entries.values()) {
      for (const hint of entry.lightHints ?? []) hints.push({ ...hint, distance: entry.distance ?? 0 });
    }
    return hints;
  }

  dispose() {
    this.disposed = true;
    for (const entry of this.entries.values()) this._drop(entry);
    this.entries.clear();
  }

  _plan(wanted) {
    let bytes = 0;
    for (const { entry, lod } of wanted) if (!entry.object) bytes += entry.booth.lods[lod].bytes;
    this.progress.bytesTotal = bytes;
  }

  async _load(entry, lod) {
    const glb = entry.booth.lods[lod];
    const first = !entry.object;
    let seen = 0;
    entry.loading = { lod, key: glb.key };
    this.inFlight += 1;
    const onProgress = (event) => {
      if (!first || !event.loaded) return;
      this.progress.bytesLoaded += event.loaded - seen;
      seen = event.loaded;
      this.onChange({ type: "progress" });
    };
    let gltf = null;
    try {
      gltf = await this.loader.loadAsync(resolveUrl(glb, this.base), onProgress);
    } catch (error) {
      entry.failures += 1;
      entry.retryAt = performance.now() + RETRY_MS * 2 ** Math.min(entry.failures, 5);
      console.warn(`booth ${entry.booth.number}: LOD${lod} failed to load`, error);
    } finally {
      this.inFlight -= 1;
      entry.loading = null;
    }
    if (gltf) this._swap(entry, gltf.scene, lod, glb);
    if (first && gltf) this.progress.bytesLoaded += glb.bytes - seen;
    this.update(...this.position);
  }

  _swap(entry, object, lod, glb) {
    if (this.disposed || entry.removed) {
      disposeObject(object);
      return;
    }
    const first = !entry.object;
    this._place(object, entry.booth);
    object.name = `booth ${entry.booth.number}`;
    object.userData.boothId = entry.booth.id;
    this.root.add(object);
    if (entry.object) {
      this.root.remove(entry.object);
      disposeObject(entry.object);
    }
    Object.assign(entry, { object, lod, key: glb.key, failures: 0 });
    indexBooth(entry, object);
    this._hideBox(entry.index);
    if (this.firstBoothAt === null) this.firstBoothAt = performance.now();
    this._count();
    this.onChange({ type: "booth", entry, first });
  }

  _place(object, booth) {
    object.position.set(...booth.position);
    object.rotation.set(0, degrees(booth.rotation), 0);
    object.updateMatrixWorld(true);
  }

  _drop(entry) {
    if (!entry.object) return;
    this.root.remove(entry.object);
    disposeObject(entry.object);
    Object.assign(entry, { object: null, lod: null, key: null, products: null, lightHints: [] });
  }

  _hideBox(index) {
    if (!this.boxes || index >= this.boxes.count) return;
    // docs/manifest.md: hide instance i once booth i is on screen.
    this.boxes.setMatrixAt(index, ZERO);
    this.boxes.instanceMatrix.needsUpdate = true;
  }

  _count() {
    let loaded = 0;
    for (const entry of this.entries.values()) if (entry.object) loaded += 1;
    this.progress.boothsLoaded = loaded;
    this.progress.done = loaded === this.entries.size;
  }
}
