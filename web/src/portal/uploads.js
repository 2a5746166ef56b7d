// Uploads with two progress bars: the bytes going up, then the processing job (docs/api.md
// "Uploads"). Up to 25 MiB a file goes as one multipart POST; a bigger one is announced first
// and sent by presigned POST (S3) or in resumable chunks (local store), whichever the server has.
import { ApiError } from "../api.js";
import { h } from "../dom.js";
import { followJob, request, send } from "./client.js";
import { errorNote } from "./ui.js";

const MULTIPART_MAX = 25 * 1024 * 1024; // PAVILION_LIMITS__MAX_UPLOAD_BYTES's default
const CHUNK_RETRIES = 3;
let largeWay = null; // "presigned" or "resumable": learned from the first 409 *_unavailable

export const MODEL_ACCEPT = ".glb,.gltf,.zip,.obj,.stl,.ply";
export const PHOTO_ACCEPT = "image/jpeg,image/png,image/webp,image/avif,image/heic,.heic,.avif";

// What the tests (and a curious person) can read: every upload of this page, newest last.
export const uploads = [];

const STEP_WORDS = {
  queued: "waiting in line",
  starting: "starting",
  converted: "converted",
  storing: "storing",
  publishing: "putting it on your booth",
  "waiting to retry": "the server hit a snag; retrying soon",
  done: "done",
  failed: "failed",
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function contentType(file) {
  const type = (file.type || "").toLowerCase();
  return /^[a-z]+\/[a-z0-9.+-]{1,80}$/.test(type) ? type : "application/octet-stream";
}

async function sha256Hex(file) {
  if (!globalThis.crypto?.subtle) {
    throw new ApiError(0, "insecure_context", "large uploads need a secure (https) page");
  }
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function sendMultipart(target, file, onBytes) {
  const form = new FormData();
  let url = `/api/booths/${target.boothId}/logo`;
  if (target.kind !== "logo") {
    form.append("kind", target.kind);
    url = `/api/products/${target.productId}/uploads`;
  }
  form.append("file", file, file.name);
  return send("POST", url, form, { onProgress: onBytes });
}

async function sendLarge(target, file, onBytes) {
  const declaration = {
    kind: target.kind,
    filename: file.name.slice(0, 255) || "upload",
    content_type: contentType(file),
    size: file.size,
    sha256: await sha256Hex(file),
  };
  const base = `/api/products/${target.productId}/uploads`;
  if (largeWay !== "resumable") {
    try {
      const session = await request("POST", `${base}/presigned`, { json: declaration });
      largeWay = "presigned";
      const form = new FormData();
      for (const [key, value] of Object.entries(session.fields)) form.append(key, value);
      form.append("file", file, file.name);
      await send("POST", session.url, form, { auth: false, onProgress: onBytes });
      return request("POST", `/api/uploads/${session.upload_id}/finalize`);
    } catch (error) {
      if (error.code !== "presigned_unavailable") throw error;
      largeWay = "resumable";
    }
  }
  const session = await request("POST", `${base}/resumable`, { json: declaration });
  await sendChunks(session, file, onBytes);
  return request("POST", `/api/uploads/${session.upload_id}/finalize`);
}

// PUT the file in order from where the server stands; after a lost answer, ask it where.
async function sendChunks(session, file, onBytes) {
  let offset = session.offset;
  let failures = 0;
  while (offset < file.size) {
    const chunk = file.slice(offset, offset + session.chunk_size);
    const start = offset;
    try {
      const answer = await send("PUT", `/api/uploads/${session.upload_id}?offset=${start}`, chunk, {
        headers: { "Content-Type": "application/octet-stream" },
        onProgress: (loaded) => onBytes(start + loaded, file.size),
      });
      offset = answer.offset;
      failures = 0;
    } catch (error) {
      const retryable = error.code === "offset_mismatch" || error.code === "network_error";
      if (!retryable || ++failures > CHUNK_RETRIES) throw error;
      if (typeof error.offset === "number") offset = error.offset;
      else {
        await sleep(1000 * failures);
        offset = (await request("GET", `/api/uploads/${session.upload_id}`)).offset;
      }
    }
  }
}

function bar(label, kind) {
  const progress = h("progress", { class: `portal-bar-${kind}`, max: 100, value: 0, "aria-label": label });
  const text = h("span", { class: "portal-bar-text", dataset: { bar: kind } }, "0 %");
  const detail = h("small", { class: "portal-bar-detail" });
  return { element: h("div", { class: "portal-bar" }, h("span", { class: "portal-bar-label" }, label), progress, text, detail), progress, text, detail };
}

function setBar(b, percent, detail) {
  const value = Math.max(0, Math.min(100, Math.round(percent)));
  b.progress.value = value;
  b.progress.dataset.percent = String(value);
  b.text.textContent = `${value} %`;
  if (detail !== undefined) b.detail.textContent = detail;
}

// One upload's row: its file name, the two bars, and its outcome.
function uploadRow(file, what) {
  const bytes = bar("Upload", "bytes");
  const processing = bar("Processing", "processing");
  const outcome = h("div", { class: "portal-upload-outcome", "aria-live": "polite" });
  const element = h(
    "li",
    { class: "portal-upload", dataset: { uploadState: "sending" } },
    h("div", { class: "portal-upload-head" }, h("strong", {}, file.name), h("span", { class: "portal-upload-kind" }, ` · ${what}`)),
    bytes.element,
    processing.element,
    outcome,
  );
  return { element, bytes, processing, outcome };
}

// startUpload(target, file, listElement) -> Promise<{ok, asset?, job?, error?}>
// target: {kind: "model" | "photo" | "logo", productId?, boothId?, label}
export async function startUpload(target, file, list) {
  const row = uploadRow(file, target.label ?? target.kind);
  const record = { name: file.name, kind: target.kind, state: "sending", bytes: 0, processing: 0, code: null };
  uploads.push(record);
  list.prepend(row.element);
  const setState = (state) => {
    record.state = state;
    row.element.dataset.uploadState = state;
  };
  const onBytes = (loaded, total) => {
    record.bytes = total ? (100 * loaded) / total : 0;
    setBar(row.bytes, record.bytes, `${formatSize(loaded)} of ${formatSize(total)}`);
  };
  try {
    const large = target.kind !== "logo" && file.size > MULTIPART_MAX;
    if (large) setBar(row.bytes, 0, "checking the file…");
    const accepted = await (large ? sendLarge(target, file, onBytes) : sendMultipart(target, file, onBytes));
    onBytes(file.size, file.size);
    setState("processing");
    if (accepted.job_id === null) throw new ApiError(422, accepted.asset.error_code ?? "failed", "");
    const job = await followJob(accepted.job_id, (state) => {
      record.processing = state.percent ?? 0;
      setBar(row.processing, record.processing, STEP_WORDS[state.step] ?? `processing: ${state.step}`);
    });
    if (job.state === "failed") throw new ApiError(422, job.error_code ?? "failed", job.error_message ?? "");
    setBar(row.processing, 100, "done");
    setState("done");
    row.outcome.replaceChildren(h("p", { class: "portal-ok" }, "Ready: it is on your booth."));
    return { ok: true, asset: accepted.asset, job };
  } catch (error) {
    record.code = error.code ?? "error";
    if (record.state === "sending") setBar(row.processing, 0, "not started");
    setState("failed");
    row.outcome.replaceChildren(errorNote(error));
    return { ok: false, error };
  }
}

function formatSize(bytes) {
  if (!bytes) return "0 B";
  const units = ["B", "KB", "MB", "GB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log(bytes) / Math.log(1024)));
  return `${(bytes / 1024 ** i).toFixed(i ? 1 : 0)} ${units[i]}`;
}

// A button-like file picker; onFiles(File[]) when files are chosen.
export function filePicker(label, accept, onFiles, { multiple = false, name } = {}) {
  const input = h("input", { type: "file", accept, multiple, class: "portal-file", name, "aria-label": label });
  input.addEventListener("change", () => {
    const files = [...input.files];
    input.value = ""; // the same file may be chosen again after a fix
    if (files.length) onFiles(files);
  });
  return h("label", { class: "portal-picker" }, h("span", {}, label), input);
}
