// The booth's products: edit their data in every pavilion language (PATCH sends only what
// changed), add new ones, upload their 3D models and photos, see their files' status.
import { h } from "../dom.js";
import { request } from "./client.js";
import { plainWords } from "./messages.js";
import { clearErrors, errorNote, field, showApiError, showFieldError, statusLine } from "./ui.js";
import { MODEL_ACCEPT, PHOTO_ACCEPT, filePicker, startUpload } from "./uploads.js";

export const LANGUAGES = [
  ["en", "English"],
  ["ru", "Russian"],
  ["zh", "Chinese"],
];

// The API's constraints (server/api/types.py), checked before sending so mistakes show at once.
const CHECKS = {
  name: (v) => (v.trim() === "" ? "A name is required." : v.length > 200 ? "At most 200 characters." : null),
  "names.en": (v) => (v.length > 200 ? "At most 200 characters." : null),
  "names.ru": (v) => (v.length > 200 ? "At most 200 characters." : null),
  "names.zh": (v) => (v.length > 200 ? "At most 200 characters." : null),
  description: (v) => (v.length > 5000 ? "At most 5000 characters." : null),
  price: (v) => (v === "" || /^\d{1,10}(\.\d{1,2})?$/.test(v) ? null : "A price like 12.50 (at most two decimals)."),
  currency: (v) => (v === "" || /^[A-Za-z]{3}$/.test(v) ? null : "A three-letter currency code, like USD or RUB."),
  country: (v) => (/^[A-Za-z]{2}$/.test(v) ? null : "A two-letter country code, like RU or CN."),
  category: (v) => (/^[a-z][a-z0-9-]{0,39}$/.test(v) ? null : "Lowercase words joined by dashes, like dried-fruit."),
  link: (v) => (v === "" || /^https?:\/\/[^\s/$.?#][^\s]*$/i.test(v) ? null : "A web address starting with http:// or https://."),
};

// Where the server's messages without a field `loc` belong.
const ALIASES = { product_exists: "name", "/price needs a currency": "currency" };

function readForm(form) {
  const value = (key) => String(form.elements.namedItem(key)?.value ?? "").trim();
  const names = {};
  for (const [lang] of LANGUAGES) if (value(`names.${lang}`)) names[lang] = value(`names.${lang}`);
  const values = { names };
  for (const key of ["name", "description", "price", "currency", "country", "category", "link"]) {
    values[key] = value(key);
  }
  return values;
}

function check(form, values, keys) {
  let ok = true;
  for (const key of keys) {
    const raw = key.startsWith("names.") ? values.names[key.slice(6)] ?? "" : values[key];
    const message = CHECKS[key]?.(raw);
    if (message) {
      showFieldError(form, key, message);
      ok = false;
    }
  }
  if (ok && keys.includes("currency") && values.price !== "" && values.currency === "") {
    showFieldError(form, "currency", "A price needs a currency.");
    ok = false;
  }
  return ok;
}

const sameNames = (a, b) => JSON.stringify(Object.entries(a ?? {}).sort()) === JSON.stringify(Object.entries(b ?? {}).sort());
const orNull = (v) => (v === "" ? null : v);

// Only the fields that differ from `product` (PATCH sets exactly what it is sent).
function changes(product, values) {
  const patch = {};
  if (values.name !== product.name) patch.name = values.name;
  if (!sameNames(values.names, product.names)) patch.names = values.names;
  if (values.description !== (product.description ?? "")) patch.description = values.description;
  const price = orNull(values.price);
  const samePrice = price === null ? product.price === null : Number(price) === Number(product.price);
  if (!samePrice) patch.price = price;
  if (orNull(values.currency.toUpperCase()) !== product.currency) patch.currency = orNull(values.currency.toUpperCase());
  if (values.country.toUpperCase() !== product.country) patch.country = values.country.toUpperCase();
  if (values.category !== product.category) patch.category = values.category;
  if (orNull(values.link) !== product.link) patch.link = orNull(values.link);
  return patch;
}

function input(value, attrs = {}) {
  return h("input", { type: "text", value: value ?? "", autocomplete: "off", ...attrs });
}

function productFields(product) {
  return [
    h("fieldset", { class: "portal-names" },
      h("legend", {}, "Name"),
      field("Default name", "name", input(product.name, { required: true, maxlength: 200 }), "Shown when a visitor's language has no name below."),
      LANGUAGES.map(([lang, label]) =>
        field(`${label} (${lang})`, `names.${lang}`, input(product.names?.[lang], { lang, maxlength: 200 }))),
    ),
    field("Description", "description", h("textarea", { rows: 3, maxlength: 5000 }, product.description ?? "")),
    h("div", { class: "portal-row" },
      field("Price", "price", input(product.price, { inputmode: "decimal", placeholder: "12.50" })),
      field("Currency", "currency", input(product.currency, { maxlength: 3, placeholder: "USD", class: "portal-short" })),
      field("Country of origin", "country", input(product.country, { maxlength: 2, class: "portal-short" })),
      field("Category", "category", input(product.category, { maxlength: 40, placeholder: "honey" })),
    ),
    field("Link", "link", input(product.link, { type: "url", placeholder: "https://" })),
  ];
}

function displayName(product) {
  return product.names?.en || product.name;
}

const STATUS_WORDS = { ready: "ready", processing: "processing", failed: "failed", uploading: "uploading" };

async function fillAssets(list, productId) {
  try {
    const page = await request("GET", `/api/products/${productId}/assets`, { params: { limit: 50 } });
    list.replaceChildren(
      ...page.items.map((asset) =>
        h("li", { dataset: { asset: asset.id, status: asset.status } },
          h("span", {}, `${asset.kind}: ${asset.filename}`),
          h("span", { class: `portal-status portal-status-${asset.status}` }, ` ${STATUS_WORDS[asset.status] ?? asset.status}`),
          asset.error_code ? h("small", { class: "portal-hint" }, ` ${plainWords(asset.error_code)} (${asset.error_code})`) : null,
        )),
    );
  } catch (error) {
    list.replaceChildren(h("li", {}, errorNote(error)));
  }
}

// productEditor(product, {uploadList, onUploaded(result)}) -> HTMLElement
export function productEditor(initial, ctx) {
  let product = initial;
  const title = h("h3", {}, displayName(product));
  const form = h("form", { class: "portal-form portal-product-form", novalidate: true }, productFields(product),
    h("div", { class: "portal-actions" }, h("button", { type: "submit" }, "Save product")), statusLine());
  const files = h("ul", { class: "portal-assets" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const values = readForm(form);
    if (!check(form, values, Object.keys(CHECKS))) return;
    const patch = changes(product, values);
    const status = form.querySelector(".portal-form-status");
    if (Object.keys(patch).length === 0) return status.replaceChildren(h("p", { class: "portal-ok" }, "Nothing changed."));
    try {
      product = await request("PATCH", `/api/products/${product.id}`, { json: patch });
      title.textContent = displayName(product);
      status.replaceChildren(h("p", { class: "portal-ok", dataset: { saved: "true" } }, "Saved."));
    } catch (error) {
      showApiError(form, error, ALIASES);
    }
  });
  const upload = (kind, label) => async (chosen) => {
    const results = await Promise.all(chosen.map((file) => startUpload({ kind, label, productId: product.id }, file, ctx.uploadList)));
    fillAssets(files, product.id);
    for (const result of results) ctx.onUploaded?.(result);
  };
  fillAssets(files, product.id);
  return h("article", { class: "portal-product", dataset: { product: product.id } },
    h("header", {}, product.photo_url ? h("img", { src: product.photo_url, alt: "" }) : null, title),
    form,
    h("div", { class: "portal-upload-buttons" },
      filePicker("Upload a 3D model", MODEL_ACCEPT, upload("model", `3D model of ${displayName(product)}`), { name: "model" }),
      filePicker("Upload photos", PHOTO_ACCEPT, upload("photo", `photo of ${displayName(product)}`), { multiple: true, name: "photo" }),
    ),
    h("details", { class: "portal-files" }, h("summary", {}, "Files"), files),
  );
}

// The "add a product" form; onCreated(product) after the API made it.
export function newProductForm(boothId, defaultCountry, onCreated) {
  const form = h("form", { class: "portal-form portal-new-product", novalidate: true },
    h("h3", {}, "Add a product"),
    h("div", { class: "portal-row" },
      field("Name", "name", input("", { required: true, maxlength: 200 })),
      field("Category", "category", input("", { maxlength: 40, placeholder: "honey" })),
      field("Country of origin", "country", input(defaultCountry, { maxlength: 2, class: "portal-short" })),
    ),
    h("div", { class: "portal-actions" }, h("button", { type: "submit" }, "Add product")),
    statusLine(),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const values = readForm(form);
    if (!check(form, values, ["name", "category", "country"])) return;
    const body = { name: values.name, names: { en: values.name }, category: values.category, country: values.country.toUpperCase() };
    try {
      const product = await request("POST", `/api/booths/${boothId}/products`, { json: body });
      form.reset();
      form.elements.namedItem("country").value = defaultCountry;
      onCreated(product);
    } catch (error) {
      showApiError(form, error, ALIASES);
    }
  });
  return form;
}
