// The portal's REST client: a bearer token, uploads with byte progress, job progress events.
//
// Every failure is an ApiError carrying the API's stable `code` (docs/api.md "Errors"); network
// failures get the client-side code `network_error`.
import { ApiError } from "../api.js";

const TOKEN_KEY = "pavilion.token";
const POLL_MS = 2000;
const FINISHED = new Set(["succeeded", "failed"]);

let onSignedOut = () => {};

export function storedToken() {
  return localStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

// Called when the API says the token is no longer good (expired, revoked): the portal logs out.
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

function toError(status, body, statusText) {
  const error = body?.error ?? { code: status ? "http_error" : "network_error", message: statusText };
  const result = new ApiError(status, error.code, error.message);
  result.details = Array.isArray(error.details) ? error.details : [];
  if (typeof error.offset === "number") result.offset = error.offset;
  if (status === 401 && error.code !== "invalid_credentials") onSignedOut(result);
  return result;
}

function authHeaders(extra = {}) {
  const token = storedToken();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

// A JSON request to the API. `json` is sent as the body; `params` go in the query string.
export async function request(method, path, { json, params, cache } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const headers = authHeaders({ Accept: "application/json" });
  if (json !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      cache,
      body: json === undefined ? undefined : JSON.stringify(json),
    });
  } catch (error) {
    throw toError(0, null, String(error?.message ?? error));
  }
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw toError(response.status, body, response.statusText);
  return body;
}

// Every item of a paginated list (`{items, total, limit, offset}`).
export async function listAll(path, params = {}) {
  const items = [];
  for (let offset = 0; ; offset += 200) {
    const page = await request("GET", path, { params: { ...params, limit: 200, offset } });
    items.push(...page.items);
    if (items.length >= page.total || page.items.length === 0) return items;
  }
}

// Send `body` with XMLHttpRequest, the one browser API that reports upload progress.
// onProgress(loadedBytes, totalBytes). `auth` false for presigned S3 POSTs (no bearer token).
export function send(method, url, body, { headers = {}, onProgress, auth = true } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    const all = auth ? authHeaders({ Accept: "application/json", ...headers }) : headers;
    for (const [key, value] of Object.entries(all)) xhr.setRequestHeader(key, value);
    if (onProgress) xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded, e.total));
    xhr.addEventListener("load", () => {
      let parsed = null;
      try {
        parsed = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        parsed = null; // S3 answers XML or nothing; only its status matters
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(parsed);
      else reject(toError(xhr.status, parsed, xhr.statusText));
    });
    // A server that refuses a body (413) may close the connection before reading it all.
    xhr.addEventListener("error", () => reject(toError(0, null, "the connection was lost")));
    xhr.addEventListener("abort", () => reject(toError(0, null, "the upload was cancelled")));
    xhr.send(body);
  });
}

// Server-sent events from a fetch() body: yields {event, data} (data parsed as JSON).
async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

// Follow a processing job to its end: its SSE stream (jobs.py), then polling if the stream
// breaks. onState(job) gets every state; resolves with the finished job.
export async function followJob(jobId, onState) {
  try {
    const response = await fetch(`/api/jobs/${jobId}/events`, {
      headers: authHeaders({ Accept: "text/event-stream" }),
      cache: "no-store",
    });
    if (!response.ok) throw toError(response.status, await response.json().catch(() => null), "");
    for await (const { event, data } of readEvents(response)) {
      if (event === "gone") throw new ApiError(404, "job_not_found", "the job is gone");
      if (event !== "job") continue;
      onState(data);
      if (FINISHED.has(data.state)) return data;
    }
  } catch (error) {
    if (error instanceof ApiError && error.status >= 400 && error.status < 500) throw error;
    // A dropped stream (proxy timeout, network blip): poll the job instead.
  }
  for (;;) {
    const job = await request("GET", `/api/jobs/${jobId}`);
    onState(job);
    if (FINISHED.has(job.state)) return job;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
