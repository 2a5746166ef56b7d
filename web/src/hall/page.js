// The visitor's hall page, route #/hall/<hallId>[?booth=<boothId>]: the 3D hall, a loading
// indicator, the booth list, then the live layer (tours, avatars, chat) from ../live/.
import "./hall.css";
import { ApiError, get } from "../api.js";
import { h } from "../dom.js";
import { connectLive } from "../live/index.js";
import { BoothsPanel } from "./booths-panel.js";
import { createHallView } from "./view.js";

const HINT_MS = 8000;

function kilobytes(bytes) {
  return `${Math.round(bytes / 1024)} KB`;
}

/** The loading indicator: "Loading booths 5/14" with a bar of the bytes planned for them. */
class LoadingIndicator {
  constructor() {
    this.bar = h("div", { class: "hall-loading-bar" });
    this.text = h("span", { class: "hall-loading-text" }, "Loading the hall…");
    this.element = h("div", { class: "hall-loading", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" },
      this.text, h("div", { class: "hall-loading-track" }, this.bar));
  }

  update(progress) {
    if (this.element.dataset.done) return;
    const fraction = progress.bytesTotal ? Math.min(1, progress.bytesLoaded / progress.bytesTotal) : 0;
    const percent = Math.round((progress.done ? 1 : fraction) * 100);
    this.bar.style.width = `${percent}%`;
    this.element.setAttribute("aria-valuenow", String(percent));
    this.text.textContent = `Loading booths ${progress.boothsLoaded}/${progress.boothsTotal} · ${kilobytes(progress.bytesLoaded)} of ${kilobytes(progress.bytesTotal)}`;
    if (progress.done) this.finish();
  }

  finish() {
    this.element.classList.add("done");
    this.element.dataset.done = "true";
    this.text.textContent = "Click the floor to walk there · drag to look · W A S D to move";
    setTimeout(() => this.element.classList.add("faded"), HINT_MS);
  }
}

function message(error) {
  if (error instanceof ApiError && error.code === "manifest_not_found") return "This hall is not open yet.";
  if (error instanceof ApiError) return `${error.message} (${error.code})`;
  return String(error);
}

/**
 * Show the hall in `app` and connect the live layer.
 *
 * @param {HTMLElement} app the page's main element
 * @param {string} hallId
 * @param {{lang: string, params: URLSearchParams}} options params: booth=<id> starts there
 * @returns {Promise<() => void>} tears the page down (the view, the live layer)
 */
export async function hallPage(app, hallId, { lang, params }) {
  const stage = h("div", { class: "hall-stage" });
  const loading = new LoadingIndicator();
  app.replaceChildren(h("div", { class: "hall-page" }, stage, loading.element));
  let resolveReady;
  let rejectReady;
  const ready = new Promise((resolve, reject) => ([resolveReady, rejectReady] = [resolve, reject]));
  ready.catch(() => {}); // a failed hall is shown on the page; the promise is for tests
  const pavilion = { view: null, ready, stats: {}, live: null };
  window.pavilion = pavilion;
  let view;
  try {
    view = await createHallView(stage, { hallId, lang, startBooth: params.get("booth") });
  } catch (error) {
    app.replaceChildren(h("p", { class: "error", role: "alert" }, message(error)));
    rejectReady(error);
    return () => {};
  }
  Object.assign(pavilion, { view, stats: view.stats });
  const stopProgress = view.onFrame(() => loading.update(view.streamer.progress));
  const hall = await get(`/api/halls/${hallId}`).catch(() => null);
  const panel = new BoothsPanel(view, { hallId, expoId: hall?.expo_id, lang });
  view.addPanel(panel.element, "left");
  panel.load().catch((error) => console.warn("booth list", error));
  let live = null;
  try {
    live = await connectLive(view, { hallId, lang });
  } catch (error) {
    // The hall works without the live layer (no tours, no avatars): say so, do not break it.
    console.warn("live layer unavailable", error);
  }
  resolveReady(view);
  return () => {
    stopProgress();
    for (const method of ["dispose", "close", "disconnect"]) {
      if (typeof live?.[method] === "function") {
        live[method]();
        break;
      }
    }
    view.dispose();
    if (window.pavilion === pavilion) delete window.pavilion;
  };
}
