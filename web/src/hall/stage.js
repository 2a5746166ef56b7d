// The hall's renderer, scene, lights, player rig and overlay: what the view is drawn with.
import * as THREE from "three";

export const EYE_HEIGHT = 1.6; // m, the desktop and touch camera above the rig's feet
// Spot lights the client keeps for the nearest booths' light hints (docs/manifest.md "Inside a
// booth GLB"): a fixed pool, so moving them never recompiles a shader. None on software WebGL:
// four spots more than halve SwiftShader's frame rate and double the time to the first booth.
const SPOT_POOL = 4;
const SPOT_GAIN = 12; // hint intensity 1 -> candela in three's physical light units

export function makeRenderer() {
  const renderer = new THREE.WebGLRenderer({ antialias: true, powerPreference: "high-performance" });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.toneMapping = THREE.NeutralToneMapping;
  renderer.xr.enabled = true;
  renderer.xr.setReferenceSpaceType("local-floor");
  renderer.domElement.className = "hall-canvas";
  renderer.domElement.tabIndex = 0;
  return renderer;
}

/** The WebGL renderer's name, and whether it is a software rasteriser (SwiftShader, llvmpipe). */
export function describeGL(renderer) {
  const gl = renderer.getContext();
  const info = gl.getExtension("WEBGL_debug_renderer_info");
  const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  return { name, software: /swiftshader|llvmpipe|softpipe|software/i.test(name) };
}

export function makeScene() {
  // Lights only: no environment map (PMREM prefiltering takes seconds on software WebGL).
  const scene = new THREE.Scene();
  scene.background = new THREE.Color("#cfd6dd");
  const sky = new THREE.HemisphereLight(0xffffff, 0x5a5040, 1.5);
  const sun = new THREE.DirectionalLight(0xffffff, 1.4);
  sun.position.set(0.4, 1, 0.7);
  scene.add(sky, sun);
  return scene;
}

/** The player: a rig at the feet (y = 0) holding the camera at eye height. */
export function makeRig(aspect) {
  const rig = new THREE.Group();
  rig.name = "player";
  const camera = new THREE.PerspectiveCamera(70, aspect, 0.05, 300);
  camera.position.set(0, EYE_HEIGHT, 0);
  camera.rotation.order = "YXZ";
  rig.add(camera);
  return { rig, camera };
}

/** The overlay over the canvas: slots for panels, the crosshair shown under pointer lock. */
export function makeOverlay() {
  const overlay = document.createElement("div");
  overlay.className = "hall-overlay";
  const slots = {};
  for (const slot of ["left", "right", "bottom"]) {
    slots[slot] = document.createElement("div");
    slots[slot].className = `hall-slot hall-slot-${slot}`;
    overlay.append(slots[slot]);
  }
  const crosshair = document.createElement("div");
  crosshair.className = "hall-crosshair";
  overlay.append(crosshair);
  return { overlay, slots, crosshair };
}

export class BoothLights {
  constructor(scene, { software = false } = {}) {
    this.spots = [];
    for (let i = 0; i < (software ? 0 : SPOT_POOL); i += 1) {
      const spot = new THREE.SpotLight(0xfff4e0, 0, 9, 0.6, 0.5, 1.2);
      scene.add(spot, spot.target);
      this.spots.push(spot);
    }
  }

  /** Light the hints nearest to (x, z); unused spots go dark. */
  update(hints, x, z) {
    const nearest = hints
      .map((hint) => ({ hint, d: Math.hypot(hint.position.x - x, hint.position.z - z) }))
      .sort((a, b) => a.d - b.d)
      .slice(0, this.spots.length);
    this.spots.forEach((spot, i) => {
      const hint = nearest[i]?.hint;
      spot.intensity = hint ? hint.intensity * SPOT_GAIN : 0;
      if (!hint) return;
      spot.position.copy(hint.position);
      spot.target.position.copy(hint.target);
      spot.angle = Math.min(hint.angle, Math.PI / 2.2);
      spot.target.updateMatrixWorld();
    });
  }

  dispose() {
    for (const spot of this.spots) {
      spot.target.removeFromParent();
      spot.removeFromParent();
      spot.dispose();
    }
  }
}
