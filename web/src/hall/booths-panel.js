// The booth list beside the hall: search by country, category and name (the REST API filters),
// a click walks to the booth's waypoint and lists its products; a product opens its card.
import { get } from "../api.js";
import { countryName, flag, h } from "../dom.js";
import { degrees } from "./geometry.js";
import { productName } from "./card.js";

const SEARCH_DELAY_MS = 250;

export class BoothsPanel {
  /**
   * @param {HallView} view the hall (waypoints from its manifest, teleport, openProduct)
   * @param {{hallId: string, expoId: string, lang: string}} options
   */
  constructor(view, { hallId, expoId, lang }) {
    this.view = view;
    this.hallId = hallId;
    this.expoId = expoId;
    this.lang = lang;
    this.request = 0;
    this.list = h("ul", { class: "hall-booth-list" });
    this.summary = h("p", { class: "hall-booth-summary" });
    this.form = h("form", { class: "hall-filters", onsubmit: (e) => e.preventDefault() });
    this.element = h(
      "section",
      { class: "hall-booths", "aria-label": "Booths" },
      h("button", { type: "button", class: "hall-booths-toggle", "aria-expanded": "true", onclick: (e) => this._toggle(e.currentTarget) }, "Booths"),
      h("div", { class: "hall-booths-body" }, this.form, this.summary, this.list),
    );
    // Closed at first where it would cover much of the hall.
    if (window.matchMedia?.("(max-width: 1100px), (max-height: 600px)").matches) this._toggle(this.element.firstChild);
  }

  /** Build the filter menus (the expo's facets) and the first list. */
  async load() {
    const facets = this.expoId ? await get(`/api/expos/${this.expoId}/facets`).catch(() => null) : null;
    const menu = (name, label, items, text) =>
      h("label", {}, label, h("select", { name, onchange: () => this.refresh() },
        h("option", { value: "" }, "All"),
        (items ?? []).map((f) => h("option", { value: f.value }, `${text(f.value)} (${f.count})`))));
    let timer = null;
    this.form.replaceChildren(
      menu("country", "Country", facets?.countries, (c) => `${flag(c)} ${countryName(c, this.lang)}`),
      menu("category", "Category", facets?.categories, (c) => c),
      h("label", {}, "Search", h("input", {
        name: "q", type: "search", placeholder: "booth or exhibitor",
        oninput: () => { clearTimeout(timer); timer = setTimeout(() => this.refresh(), SEARCH_DELAY_MS); },
      })),
    );
    await this.refresh();
  }

  /** Fetch the booths matching the filters and list them (a later call wins). */
  async refresh() {
    const request = ++this.request;
    const filters = { country: this.form.country?.value, category: this.form.category?.value, q: this.form.q?.value?.trim() };
    let page;
    try {
      page = await get(`/api/halls/${this.hallId}/booths`, { ...filters, limit: 200 });
    } catch (error) {
      if (request === this.request) this.summary.textContent = `The booth list is not available (${error.code ?? error}).`;
      return;
    }
    if (request !== this.request) return;
    this.summary.textContent = page.total === 1 ? "1 booth" : `${page.total} booths`;
    this.list.replaceChildren(...page.items.map((booth) => this._item(booth)));
  }

  _item(booth) {
    const org = booth.organisation;
    const products = h("ul", { class: "hall-booth-products", hidden: true });
    const go = () => {
      const waypoint = this.view.boothById(booth.id)?.waypoint;
      if (waypoint) this.view.teleport(waypoint.position, degrees(waypoint.yaw), { smooth: true });
      this._products(booth, products);
    };
    return h(
      "li",
      { dataset: { booth: booth.id } },
      h("button", { type: "button", class: "hall-booth", style: `--primary:${booth.primary_color}`, onclick: go },
        h("span", { class: "hall-booth-number" }, booth.slot_number),
        h("span", { class: "hall-booth-name" }, booth.fascia_name),
        h("span", { class: "hall-booth-meta" }, `${org.name} · ${flag(org.country)} ${countryName(org.country, this.lang)}`),
      ),
      products,
    );
  }

  async _products(booth, list) {
    list.hidden = !list.hidden;
    if (list.hidden || list.dataset.loaded) return;
    try {
      const page = await get(`/api/booths/${booth.id}/products`, { limit: 200 });
      list.dataset.loaded = "true";
      list.replaceChildren(...page.items.map((product) =>
        h("li", {}, h("button", { type: "button", class: "hall-product", dataset: { product: product.id }, onclick: () => this.view.openProduct(product.id) },
          productName(product, this.lang)))));
    } catch (error) {
      list.replaceChildren(h("li", { class: "error" }, `Products are not available (${error.code ?? error}).`));
    }
  }

  _toggle(button) {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    this.element.classList.toggle("collapsed", !open);
  }
}
