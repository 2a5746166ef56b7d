// Test-only hall viewer: load ?manifest=<url>, the shell and the booths, render one frame.
//
// Query parameters:
//   manifest  URL of manifest.json (keys in it resolve against this URL, or `url` fields win)
//   booths    "all" (default), "none", or a booth number such as "A2" (load only that one)
//   lod       booth LOD to load, 0-2 (default 0)
//   camera    "overview" (default: above the entrance, looking over the hall), "spawn" (eye height
//             at the first spawn point) or "booth:<number>" (at that booth's tour waypoint)
//
// window.__result = {ok: true, booths: [{number, triangles, meshes}], shell: {triangles, meshes},
//                    renderer, milliseconds, firstBoothMs}
//                 | {ok: false, error}

import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { MeshoptDecoder } from 'three/addons/libs/meshopt_decoder.module.js';

const params = new URLSearchParams(window.location.search);

function makeRenderer(canvas) {
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(1);
  renderer.setSize(canvas.width, canvas.height, false);
  renderer.setClearColor(new THREE.Color('#ff00ff'), 1);
  renderer.toneMapping = THREE.NeutralToneMapping;
  return renderer;
}

function makeScene() {
  // Lights only (no environment map: PMREM prefiltering takes ~10 s on SwiftShader).
  const scene = new THREE.Scene();
  scene.add(new THREE.HemisphereLight(0xffffff, 0x404040, 1.6));
  const key = new THREE.DirectionalLight(0xffffff, 1.6);
  key.position.set(0.4, 1, 0.7);
  scene.add(key);
  return scene;
}

function count(root) {
  let triangles = 0;
  let meshes = 0;
  root.traverse((node) => {
    if (!node.isMesh) return;
    meshes += 1;
    const g = node.geometry;
    const n = (g.index ? g.index.count : g.attributes.position.count) / 3;
    triangles += node.isInstancedMesh ? n * node.count : n;
  });
  return { triangles, meshes };
}

function resolve(entry, base) {
  return entry.url || new URL(entry.key, base).href;
}

function farBoxes(shell) {
  // The shell's far-LOD booth boxes: one instance per manifest booth, in manifest order.
  let found = null;
  shell.getObjectByName('far_booths')?.traverse((node) => {
    if (node.isInstancedMesh) found = node;
  });
  return found;
}

function hideFarBox(boxes, index) {
  if (!boxes) return;
  boxes.setMatrixAt(index, new THREE.Matrix4().makeScale(0, 0, 0));
  boxes.instanceMatrix.needsUpdate = true;
}

function place(object, booth) {
  object.position.set(...booth.position);
  object.rotation.y = THREE.MathUtils.degToRad(booth.rotation);
}

function aim(camera, manifest) {
  const choice = params.get('camera') || 'overview';
  const { width, depth } = manifest.hall;
  if (choice === 'overview') {
    camera.position.set(0, Math.max(width, depth) * 0.45, depth / 2 + 6);
    camera.lookAt(0, 0, -depth * 0.1);
    return;
  }
  const point = choice === 'spawn'
    ? manifest.spawn_points[0]
    : manifest.booths.find((b) => `booth:${b.number}` === choice)?.waypoint;
  if (!point) throw new Error(`no camera ${choice}`);
  const yaw = THREE.MathUtils.degToRad(point.yaw);
  camera.position.set(point.position[0], 1.6, point.position[2]);
  // yaw 0 looks towards -z; positive yaw turns counter-clockwise seen from above.
  const target = new THREE.Vector3(-Math.sin(yaw), 0, -Math.cos(yaw));
  camera.lookAt(camera.position.clone().add(target.multiplyScalar(5)).setY(1.3));
}

async function main() {
  const manifestUrl = new URL(params.get('manifest'), window.location.href);
  const manifest = await (await fetch(manifestUrl)).json();
  const canvas = document.getElementById('view');
  const renderer = makeRenderer(canvas);
  const scene = makeScene();
  const camera = new THREE.PerspectiveCamera(60, canvas.width / canvas.height, 0.1, 500);
  const loader = new GLTFLoader().setMeshoptDecoder(MeshoptDecoder);
  const started = performance.now();

  const shell = await loader.loadAsync(resolve(manifest.shell, manifestUrl));
  scene.add(shell.scene);

  const boxes = farBoxes(shell.scene);
  const which = params.get('booths') || 'all';
  const lod = Number(params.get('lod') || 0);
  const wanted = manifest.booths
    .map((booth, index) => ({ booth, index }))
    .filter(({ booth }) => which === 'all' || booth.number === which);
  let firstBoothMs = null;
  const booths = await Promise.all(
    (which === 'none' ? [] : wanted).map(async ({ booth, index }) => {
      const gltf = await loader.loadAsync(resolve(booth.lods[lod], manifestUrl));
      if (firstBoothMs === null) firstBoothMs = Math.round(performance.now() - started);
      place(gltf.scene, booth);
      scene.add(gltf.scene);
      hideFarBox(boxes, index);
      return { number: booth.number, ...count(gltf.scene) };
    }),
  );
  aim(camera, manifest);
  camera.updateProjectionMatrix();
  renderer.render(scene, camera);
  renderer.getContext().finish();
  const gl = renderer.getContext();
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  return {
    ok: true,
    shell: count(shell.scene),
    farBoxes: boxes ? boxes.count : 0,
    booths,
    firstBoothMs,
    renderer: gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER),
    milliseconds: Math.round(performance.now() - started),
  };
}

main().then(
  (result) => { window.__result = result; },
  (error) => {
    console.error(error);
    window.__result = { ok: false, error: String(error && error.stack ? error.stack : error) };
  },
);
