// The live layer of a hall page (issue 7): other visitors, chat, tours and voice over the tour
// websocket (docs/protocol.md). The hall page calls connectLive once its view is ready.
import "./live.css";
import { HallLive } from "./live.js";

/**
 * Connect a hall view to the tour server.
 * @param {object} view the HallView (web/src/hall/view.js)
 * @param {{hallId: string, lang?: string}} options
 * @returns {HallLive|null} the live layer (already connecting), or null without a hall
 */
export function connectLive(view, { hallId, lang = "en" } = {}) {
  if (!view || !hallId) return null;
  const live = new HallLive(view, { hallId, lang });
  window.pavilion = window.pavilion ?? {};
  window.pavilion.live = live.hook();
  live.start();
  return live;
}
