// Product hotspots (a small "i" marker over every product, from the manifest) and the highlight
// the highlight a guide's pointing puts on a product (a pulsing cyan ring and box around it).
import * as THREE from "three";

const MARKER_SIZE = 0.22;
const HIGHLIGHT_COLOR = 0x19e3ff; // cyan: stands out on the warm booth colours and the grey hall

function markerTexture() {
  const size = 64;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.beginPath();
  ctx.arc(size / 2, size / 2, size / 2 - 2, 0, Math.PI * 2);
  ctx.fill();
  ctx.fillStyle = "#1565c0";
  ctx.beginPath();
  ctx.arc(size / 2, size / 2, size / 2 - 7, 0, Math.PI * 2);
  ctx.fill();
  ctx.fillStyle = "#ffffff";
  ctx.font = "bold 38px sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText("i", size / 2, size / 2 + 2);
  const texture = new THREE.CanvasTexture(canvas);
  texture.colorSpace = THREE.SRGBColorSpace;
  return texture;
}

/** The product id an intersected object stands for (a marker, or a node under a product). */
export function productOf(object) {
  for (let node = object; node; node = node.parent) {
    if (node.userData?.product_id) return node.userData.product_id;
  }
  return null;
}

export class Hotspots {
  constructor(scene) {
    this.group = new THREE.Group();
    this.group.name = "hotspots";
    scene.add(this.group);
    this.material = new THREE.SpriteMaterial({ map: markerTexture(), transparent: true, depthWrite: false });
    this.markers = new Map();
    this.highlighted = null;
    this.anchor = null;
    this.box = new THREE.Box3();
    this.highlight = this._makeHighlight();
    scene.add(this.highlight);
  }

  /** One marker per hotspot of the manifest's booths (replacing the previous ones). */
  setBooths(booths) {
    for (const marker of this.markers.values()) this.group.remove(marker);
    this.markers.clear();
    for (const booth of booths) {
      for (const hotspot of booth.hotspots ?? []) {
        const marker = new THREE.Sprite(this.material);
        marker.position.set(...hotspot.anchor);
        marker.scale.setScalar(MARKER_SIZE);
        marker.userData = { product_id: hotspot.product_id, boothId: booth.id, hotspot: true };
        marker.name = `hotspot ${hotspot.product_id}`;
        this.markers.set(hotspot.product_id, marker);
        this.group.add(marker);
      }
    }
    if (this.highlighted && !this.markers.has(this.highlighted)) this.set(null);
  }

  /** The hotspot anchor of a product (hall space), or null. */
  anchorOf(productId) {
    return this.markers.get(productId)?.position ?? null;
  }

  /** Highlight a product (null: none). */
  set(productId) {
    this.highlighted = productId && this.markers.has(productId) ? productId : null;
    this.highlight.visible = this.highlighted !== null;
  }

  /** Move the highlight onto the product's loaded node (or its anchor) and pulse it. */
  update(timeMs, findProduct) {
    if (!this.highlighted) return;
    const node = findProduct(this.highlighted);
    const anchor = this.anchorOf(this.highlighted);
    if (node) this.box.setFromObject(node);
    else this.box.setFromCenterAndSize(anchor.clone().setY(anchor.y / 2), new THREE.Vector3(0.4, anchor.y, 0.4));
    const [ring, outline] = this.highlight.children;
    const size = this.box.getSize(new THREE.Vector3());
    const centre = this.box.getCenter(new THREE.Vector3());
    const pulse = 1 + 0.12 * Math.sin(timeMs / 180);
    ring.position.set(centre.x, this.box.min.y + 0.02, centre.z);
    ring.scale.setScalar((Math.max(size.x, size.z) / 2 + 0.15) * pulse);
    outline.box.copy(this.box).expandByScalar(0.04);
  }

  dispose() {
    this.material.map.dispose();
    this.material.dispose();
    for (const child of this.highlight.children) {
      child.geometry?.dispose();
      child.material?.dispose();
    }
    this.group.removeFromParent();
    this.highlight.removeFromParent();
  }

  _makeHighlight() {
    const group = new THREE.Group();
    group.name = "product highlight";
    const ring = new THREE.Mesh(
      new THREE.RingGeometry(0.85, 1, 48).rotateX(-Math.PI / 2),
      new THREE.MeshBasicMaterial({ color: HIGHLIGHT_COLOR, transparent: true, opacity: 0.9, side: THREE.DoubleSide, depthWrite: false }),
    );
    const outline = new THREE.Box3Helper(new THREE.Box3(), HIGHLIGHT_COLOR);
    group.add(ring, outline);
    group.visible = false;
    return group;
  }
}
