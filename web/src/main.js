// The expo browser: pick an expo, filter its booths by country and category, open a booth;
// and the routes of the 3D hall (#/hall/<id>) and the exhibitor portal (#/portal), each loaded
// on demand (they bring three.js).
import "./style.css";
import { ApiError, get } from "./api.js";
import { countryName, flag, h, price } from "./dom.js";

const app = document.getElementById("app");
const langSelect = document.getElementById("lang");
const state = { lang: localStorage.getItem("pavilion.lang") || "en" };
langSelect.value = state.lang;
langSelect.addEventListener("change", () => {
  state.lang = langSelect.value;
  localStorage.setItem("pavilion.lang", state.lang);
  route();
});

function show(...nodes) {
  app.replaceChildren(...nodes);
}

function showError(error) {
  const message = error instanceof ApiError ? `${error.message} (${error.code})` : String(error);
  show(h("p", { class: "error", role: "alert" }, message));
}

async function expoList() {
  const expos = await get("/api/expos");
  if (expos.items.length === 1) {
    window.location.replace(`#/expo/${expos.items[0].id}`);
    return;
  }
  show(
    h("h1", {}, "Expos"),
    h("ul", { class: "expos" }, expos.items.map((e) => h("li", {}, h("a", { href: `#/expo/${e.id}` }, e.name)))),
  );
}

function boothCard(booth) {
  const org = booth.organisation;
  return h(
    "a",
    { class: "booth", href: `#/booth/${booth.id}`, style: `--primary:${booth.primary_color};--accent:${booth.accent_color}`, dataset: { booth: booth.id } },
    h("div", { class: "fascia" }, booth.logo_url ? h("img", { src: booth.logo_url, alt: "", loading: "lazy" }) : null, h("span", {}, booth.fascia_name)),
    h("div", { class: "meta" }, h("span", { class: "slot" }, booth.slot_number), ` ${flag(org.country)} ${countryName(org.country, state.lang)}`),
    h("p", { class: "org" }, org.name),
    h("p", { class: "tagline" }, booth.tagline),
    h("p", { class: "count" }, `${booth.product_count} products`),
  );
}

async function expoPage(expoId, params) {
  const [expo, halls, facets] = await Promise.all([
    get(`/api/expos/${expoId}`),
    get(`/api/expos/${expoId}/halls`),
    get(`/api/expos/${expoId}/facets`),
  ]);
  const filters = { country: params.get("country") || "", category: params.get("category") || "", q: params.get("q") || "" };
  const booths = await get(`/api/expos/${expoId}/booths`, { ...filters, limit: 200 });
  const onFilter = (event) => {
    const form = event.currentTarget.form ?? event.currentTarget;
    const next = new URLSearchParams();
    for (const key of ["country", "category", "q"]) if (form[key].value) next.set(key, form[key].value);
    window.location.hash = `#/expo/${expoId}?${next}`;
    if (event.type === "submit") event.preventDefault();
  };
  const select = (name, label, options) =>
    h(
      "label",
      {},
      label,
      h(
        "select",
        { name, onchange: onFilter },
        h("option", { value: "" }, "All"),
        options.map((o) => h("option", { value: o.value, selected: o.value === filters[name] }, `${o.label} (${o.count})`)),
      ),
    );
  show(
    h("section", { class: "expo" }, h("h1", {}, expo.name), h("p", {}, expo.description), h("p", { class: "dates" }, `${expo.starts_on ?? ""} – ${expo.ends_on ?? ""}`)),
    h("p", { class: "halls" }, halls.items.map((hall) =>
      h("a", { class: "hall", href: `#/hall/${hall.id}`, dataset: { hall: hall.id }, title: "Walk the hall in 3D" }, `${hall.name} · ${hall.width}×${hall.depth} m · enter in 3D`))),
    h(
      "form",
      { class: "filters", onsubmit: onFilter },
      select("country", "Country", facets.countries.map((f) => ({ ...f, label: `${flag(f.value)} ${countryName(f.value, state.lang)}` }))),
      select("category", "Category", facets.categories.map((f) => ({ ...f, label: f.value }))),
      h("label", {}, "Search", h("input", { name: "q", type: "search", value: filters.q, placeholder: "booth or exhibitor" })),
    ),
    h("p", { class: "summary" }, `${booths.total} booths`),
    h("div", { class: "booths" }, booths.items.map(boothCard)),
  );
}

function productCard(product) {
  const name = product.names?.[state.lang] || product.name;
  return h(
    "article",
    { class: "product", dataset: { product: product.id } },
    product.photo_url ? h("img", { src: product.photo_url, alt: name, loading: "lazy" }) : h("div", { class: "nophoto" }),
    h("h3", {}, name),
    h("p", { class: "category" }, `${product.category} · ${flag(product.country)} ${countryName(product.country, state.lang)}`),
    h("p", { class: "price" }, price(product.price, product.currency, state.lang)),
    h("p", { class: "description" }, product.description),
    product.link ? h("a", { href: product.link, rel: "noopener noreferrer", target: "_blank" }, "Website") : null,
  );
}

async function boothPage(boothId) {
  const [booth, products] = await Promise.all([get(`/api/booths/${boothId}`), get(`/api/booths/${boothId}/products`, { limit: 200 })]);
  const hall = await get(`/api/halls/${booth.hall_id}`);
  show(
    h("p", {}, h("a", { href: `#/expo/${hall.expo_id}` }, "← All booths"), " · ", h("a", { href: `#/hall/${hall.id}?booth=${booth.id}` }, "See it in the 3D hall")),
    h("section", { class: "booth-head", style: `--primary:${booth.primary_color};--accent:${booth.accent_color}` },
      booth.logo_url ? h("img", { src: booth.logo_url, alt: "" }) : null,
      h("div", {}, h("h1", {}, booth.fascia_name), h("p", {}, `${booth.organisation.name} · ${flag(booth.organisation.country)} ${countryName(booth.organisation.country, state.lang)} · ${booth.template} booth ${booth.slot_number}`), h("p", {}, booth.tagline)),
    ),
    h("div", { class: "products" }, products.items.map(productCard)),
  );
}

// The current page's teardown (the hall frees its WebGL context and closes its live layer).
let leave = null;
let routing = 0;

async function hallRoute(hallId, params, token) {
  document.body.classList.add("hall-mode");
  const { hallPage } = await import("./hall/page.js");
  if (token !== routing) return;
  const teardown = await hallPage(app, hallId, { lang: state.lang, params });
  // The visitor may have left while the hall was loading.
  if (token === routing) leave = teardown;
  else teardown();
}

async function portalRoute(token) {
  const { openPortal } = await import("./portal/index.js");
  if (token !== routing) return;
  const portal = openPortal(app);
  leave = () => portal?.dispose?.();
}

async function route() {
  const token = ++routing;
  leave?.();
  leave = null;
  document.body.classList.remove("hall-mode");
  delete document.body.dataset.ready;
  const [path, query] = window.location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query ?? "");
  const parts = (path || "/").split("/").filter(Boolean);
  try {
    if (parts[0] === "expo" && parts[1]) await expoPage(parts[1], params);
    else if (parts[0] === "booth" && parts[1]) await boothPage(parts[1]);
    else if (parts[0] === "hall" && parts[1]) await hallRoute(parts[1], params, token);
    else if (parts[0] === "portal") await portalRoute(token);
    else await expoList();
    if (token === routing) document.body.dataset.ready = "true";
  } catch (error) {
    showError(error);
  }
}

window.addEventListener("hashchange", route);
route();
