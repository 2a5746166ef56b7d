// A small live 3D preview of one booth: its LOD0 GLB from the hall manifest (docs/manifest.md),
// rendered on demand (no animation loop: the portal is a form, not a game), turned by dragging.
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
import { MeshoptDecoder } from "three/examples/jsm/libs/meshopt_decoder.module.js";
import { h } from "../dom.js";
import { request } from "./client.js";
import { errorNote } from "./ui.js";

const WIDTH = 560;
const HEIGHT = 360;

function makeScene() {
  // Lights only: an environment map's prefiltering takes seconds on software WebGL.
  const scene = new THREE.Scene();
  scene.background = new THREE.Color("#e9e5dc");
  scene.add(new THREE.HemisphereLight(0xffffff, 0x5a5a5a, 1.7));
  const key = new THREE.DirectionalLight(0xffffff, 1.5);
  key.position.set(0.5, 1, 0.8);
  scene.add(key);
  const floor = new THREE.Mesh(
    new THREE.CircleGeometry(12, 48).rotateX(-Math.PI / 2),
    new THREE.MeshStandardMaterial({ color: "#cfc8b8", roughness: 1 }),
  );
  floor.position.y = -0.01;
  scene.add(floor);
  return scene;
}

// Aim from the front (+z, booth space) and a little above, far enough to see the whole box.
function frame(camera, box) {
  const size = box.getSize(new THREE.Vector3());
  const centre = box.getCenter(new THREE.Vector3());
  const radius = Math.max(size.length() / 2, 0.5);
  const distance = radius / Math.sin(THREE.MathUtils.degToRad(camera.fov / 2)) * 0.9;
  camera.position.set(centre.x + distance * 0.35, centre.y + distance * 0.45, centre.z + distance * 0.85);
  camera.near = distance / 100;
  camera.far = distance * 10;
  camera.lookAt(centre);
  camera.updateProjectionMatrix();
}

function countTriangles(root) {
  let triangles = 0;
  root.traverse((node) => {
    if (!node.isMesh) return;
    const g = node.geometry;
    triangles += (g.index ? g.index.count : g.attributes.position.count) / 3;
  });
  return triangles;
}

// createPreview(hallId, boothId) -> {element, reload(): Promise, state, dispose()}
// state: {loads, url, triangles, productIds, error}: what is on screen, for the tests.
export function createPreview(hallId, boothId) {
  const canvas = h("canvas", { width: WIDTH, height: HEIGHT, class: "portal-preview-canvas" });
  const note = h("div", { class: "portal-preview-note", "aria-live": "polite" });
  const element = h("div", { class: "portal-preview" }, canvas, note);
  const state = { loads: 0, url: null, triangles: 0, productIds: [], error: null, loading: false };
  let renderer;
  try {
    renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  } catch (error) {
    note.textContent = "The 3D preview needs WebGL, which this browser does not offer.";
    state.error = "webgl_unavailable";
    return { element, state, reload: async () => {}, dispose() {} };
  }
  renderer.setPixelRatio(1);
  renderer.setSize(WIDTH, HEIGHT, false);
  renderer.toneMapping = THREE.NeutralToneMapping;
  const scene = makeScene();
  const camera = new THREE.PerspectiveCamera(45, WIDTH / HEIGHT, 0.1, 200);
  const turntable = new THREE.Group();
  scene.add(turntable);
  const loader = new GLTFLoader().setMeshoptDecoder(MeshoptDecoder);
  const render = () => renderer.render(scene, camera);

  // Drag to turn the booth about its vertical axis.
  let dragX = null;
  canvas.addEventListener("pointerdown", (e) => { dragX = e.clientX; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", () => { dragX = null; });
  canvas.addEventListener("pointermove", (e) => {
    if (dragX === null) return;
    turntable.rotation.y += (e.clientX - dragX) * 0.01;
    dragX = e.clientX;
    render();
  });

  // One load at a time: two jobs finishing together must not race two GLBs into the scene.
  let chain = Promise.resolve();
  const reload = () => (chain = chain.then(load, load));

  async function load() {
    state.loading = true;
    note.textContent = "Loading the 3D preview…";
    try {
      // no-cache: the manifest is cacheable for 10 s, and we want the version just published.
      const manifest = await request("GET", `/api/halls/${hallId}/manifest`, { cache: "no-cache" });
      const booth = manifest.booths.find((b) => b.id === boothId);
      if (!booth) {
        note.textContent = "This booth is not in the published hall yet. It appears after the organiser publishes the hall.";
        return;
      }
      const url = booth.lods[0].url ?? booth.lods[0].key;
      if (url !== state.url) {
        const gltf = await loader.loadAsync(url);
        disposeChildren(turntable);
        turntable.add(gltf.scene);
        state.triangles = countTriangles(gltf.scene);
        frame(camera, new THREE.Box3().setFromObject(gltf.scene));
        state.url = url;
        state.loads += 1;
      }
      state.productIds = booth.hotspots.map((spot) => spot.product_id);
      state.error = null;
      note.textContent = `Booth ${booth.number} as visitors see it · drag to turn`;
      render();
    } catch (error) {
      state.error = error.code ?? "preview_failed";
      note.replaceChildren(errorNote(error.code ? error : { code: "preview_failed" }));
    } finally {
      state.loading = false;
    }
  }

  function dispose() {
    disposeChildren(turntable);
    renderer.dispose();
    renderer.forceContextLoss();
  }

  return { element, state, reload, dispose };
}

function disposeChildren(group) {
  for (const child of [...group.children]) {
    child.traverse((node) => {
      node.geometry?.dispose();
      for (const material of [node.material].flat().filter(Boolean)) {
        for (const value of Object.values(material)) if (value?.isTexture) value.dispose();
        material.dispose();
      }
    });
    group.remove(child);
  }
}
