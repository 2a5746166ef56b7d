// The product card a hotspot opens: photo, name in the visitor's language, price, origin, link.
// Product data is untrusted: text goes through textContent (dom.js h()), links only if http(s).
import { get } from "../api.js";
import { countryName, flag, h, price } from "../dom.js";

/** The link as a safe href (http or https only), or null. */
export function safeLink(link) {
  if (!link) return null;
  try {
    const url = new URL(link, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export function productName(product, lang) {
  return product.names?.[lang] || product.name;
}

export class ProductCard {
  constructor(lang) {
    this.lang = lang;
    this.productId = null;
    this.element = h("aside", { class: "hall-card", hidden: true, "aria-live": "polite" });
    this.onClose = () => {};
  }

  /** Fetch the product and show it; a later call wins over an earlier one still loading. */
  async show(productId) {
    this.productId = productId;
    this.element.hidden = false;
    this.element.dataset.state = "loading";
    this.element.replaceChildren(h("p", { class: "hall-card-loading" }, "Loading…"));
    let product;
    try {
      product = await get(`/api/products/${encodeURIComponent(productId)}`);
    } catch (error) {
      if (this.productId !== productId) return;
      this.element.dataset.state = "error";
      this.element.replaceChildren(this._close(), h("p", { class: "error" }, `This product is not available (${error.code ?? error}).`));
      return;
    }
    if (this.productId !== productId) return;
    this._render(product);
  }

  hide() {
    this.productId = null;
    this.element.hidden = true;
    this.element.replaceChildren();
    this.onClose();
  }

  _close() {
    return h("button", { class: "hall-card-close", type: "button", "aria-label": "Close", onclick: () => this.hide() }, "×");
  }

  _render(product) {
    const name = productName(product, this.lang);
    const link = safeLink(product.link);
    this.element.dataset.state = "ready";
    this.element.dataset.product = product.id;
    // replaceChildren() would write a null as the text "null": drop the parts a product lacks.
    const parts = [
      this._close(),
      product.photo_url ? h("img", { class: "hall-card-photo", src: product.photo_url, alt: name }) : null,
      h("h2", { class: "hall-card-name" }, name),
      h("p", { class: "hall-card-price" }, price(product.price, product.currency, this.lang)),
      h("p", { class: "hall-card-origin" }, `${flag(product.country)} ${countryName(product.country, this.lang)}`.trim()),
      h("p", { class: "hall-card-category" }, product.category),
      product.description ? h("p", { class: "hall-card-description" }, product.description) : null,
      link ? h("a", { class: "hall-card-link", href: link, rel: "noopener noreferrer", target: "_blank" }, "Website") : null,
    ];
    this.element.replaceChildren(...parts.filter(Boolean));
  }
}
