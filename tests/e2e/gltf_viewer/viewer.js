// Test-only glTF viewer: load ?model=<url>, frame it, render once, report in window.__result.
//
// Query parameters:
//   model  URL of the .glb to load (required)
//   bg     background colour as 6 hex digits (default ff00ff: magenta, which no model uses)
//   view   camera direction from the model's centre as "x,y,z" (default 0.6,0.45,1: front-right,
//          from above; the pipeline's outputs face +Z and stand on y = 0)
//
// window.__result = {ok: true, triangles, meshes, textures: [[w, h]...], size: [x, y, z],
//                    extensions, renderer, milliseconds}
//                 | {ok: false, error}   (the error is also logged with console.error)

import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { MeshoptDecoder } from 'three/addons/libs/meshopt_decoder.module.js';

const params = new URLSearchParams(window.location.search);

function makeRenderer(canvas, background) {
  // preserveDrawingBuffer keeps the frame readable after compositing, for the screenshot.
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(1);
  renderer.setSize(canvas.width, canvas.height, false);
  renderer.setClearColor(background, 1);
  // Neutral tone mapping (as <model-viewer> uses): bright whites do not clip to flat white, so
  // faces stay distinguishable, and hues are kept.
  renderer.toneMapping = THREE.NeutralToneMapping;
  return renderer;
}

function makeScene() {
  // Lights only, no environment map: prefiltering one (PMREMGenerator) takes ~10 s on
  // SwiftShader. Sky/ground fill plus a key light from above the front, so faces that point different ways are shaded apart.
  const scene = new THREE.Scene();
  scene.add(new THREE.HemisphereLight(0xffffff, 0x303030, 1.2));
  const key = new THREE.DirectionalLight(0xffffff, 2.0);
  key.position.set(0.3, 1, 0.8);
  scene.add(key);
  return scene;
}

function frame(camera, object, direction) {
  const box = new THREE.Box3().setFromObject(object);
  const sphere = box.getBoundingSphere(new THREE.Sphere());
  const radius = Math.max(sphere.radius, 1e-6);
  const distance = (radius / Math.sin(THREE.MathUtils.degToRad(camera.fov / 2))) * 1.05;
  camera.position.copy(sphere.center).addScaledVector(direction.normalize(), distance);
  camera.near = distance / 100;
  camera.far = distance * 100;
  camera.lookAt(sphere.center);
  camera.updateProjectionMatrix();
  return box;
}

function summarize(root) {
  let triangles = 0;
  let meshes = 0;
  const textures = new Set();
  root.traverse((node) => {
    if (!node.isMesh) return;
    meshes += 1;
    const geometry = node.geometry;
    const count = geometry.index ? geometry.index.count : geometry.attributes.position.count;
    triangles += count / 3;
    const materials = Array.isArray(node.material) ? node.material : [node.material];
    for (const material of materials) {
      for (const value of Object.values(material)) {
        if (value && value.isTexture && value.image) textures.add(value);
      }
    }
  });
  const decoded = [...textures].map((t) => [t.image.width || 0, t.image.height || 0]);
  return { triangles, meshes, textures: decoded };
}

function rendererName(renderer) {
  const gl = renderer.getContext();
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  return gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER);
}

async function main() {
  const model = params.get('model');
  if (!model) throw new Error('no ?model= given');
  const background = new THREE.Color(`#${params.get('bg') || 'ff00ff'}`);
  const view = (params.get('view') || '0.6,0.45,1').split(',').map(Number);

  const canvas = document.getElementById('view');
  const renderer = makeRenderer(canvas, background);
  const scene = makeScene();
  const camera = new THREE.PerspectiveCamera(40, canvas.width / canvas.height);

  // EXT_meshopt_compression needs the decoder; KHR_mesh_quantization and EXT_texture_webp
  // are built into GLTFLoader.
  const loader = new GLTFLoader().setMeshoptDecoder(MeshoptDecoder);
  const gltf = await loader.loadAsync(model);
  scene.add(gltf.scene);
  const box = frame(camera, gltf.scene, new THREE.Vector3(...view));
  renderer.render(scene, camera);
  renderer.getContext().finish();
  const size = box.getSize(new THREE.Vector3());
  return {
    ok: true,
    ...summarize(gltf.scene),
    size: [size.x, size.y, size.z],
    extensions: gltf.parser.json.extensionsUsed || [],
    renderer: rendererName(renderer),
    milliseconds: Math.round(performance.now()),
  };
}

main().then(
  (result) => { window.__result = result; },
  (error) => {
    console.error(error);
    window.__result = { ok: false, error: String(error && error.stack ? error.stack : error) };
  },
);
