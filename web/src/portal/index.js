// The exhibitor portal (#/portal): log in, find the organisation's booth, brand it, upload its
// logo, photos and 3D models with progress, preview it in 3D, edit its products' data in the
// pavilion's languages. Text from the API always goes in through textContent (dom.js h()).
//
// Test hook: window.pavilion.portal = {state, me, booth, products, preview, uploads}, with
// state "loading" | "login" | "ready" | "message" | "error" (also root[data-portal-state]).
import "./portal.css";
import { h } from "../dom.js";
import { brandingPanel } from "./branding.js";
import { listAll, request, storeToken, storedToken, whenSignedOut } from "./client.js";
import { createPreview } from "./preview.js";
import { newProductForm, productEditor } from "./products.js";
import { errorNote, field, statusLine } from "./ui.js";
import { uploads } from "./uploads.js";

const BOOTH_KEY = "pavilion.portal.booth";
let current = null;

// openPortal(container) -> {dispose()}: renders the portal into `container`.
export function openPortal(container) {
  current?.dispose();
  current = createPortal(container);
  return current;
}

function section(title, ...content) {
  return h("section", { class: "portal-section" }, h("h2", {}, title), ...content);
}

// Booths of the caller's organisation (admins: every booth), across every expo: the API lists
// booths by expo or hall, not by organisation.
async function findBooths(me) {
  const expos = await listAll("/api/expos");
  const lists = await Promise.all(expos.map((expo) => listAll(`/api/expos/${expo.id}/booths`)));
  const all = lists.flat();
  return me.role === "admin" ? all : all.filter((booth) => booth.organisation.id === me.organisation_id);
}

function createPortal(container) {
  const root = h("div", { class: "portal" });
  container.replaceChildren(root);
  const hook = { state: "loading", me: null, booth: null, products: [], preview: null, uploads };
  window.pavilion = Object.assign(window.pavilion ?? {}, { portal: hook });
  let preview = null;
  let disposed = false;

  const setState = (state) => {
    hook.state = state;
    root.dataset.portalState = state;
  };
  const show = (state, ...nodes) => {
    setState(state);
    root.replaceChildren(...nodes);
  };

  function signOut(notice) {
    storeToken(null);
    preview?.dispose();
    preview = null;
    showLogin(notice);
  }

  function showLogin(notice) {
    const form = h("form", { class: "portal-form portal-login", novalidate: true },
      h("h1", {}, "Exhibitor portal"),
      notice ? h("p", { class: "portal-hint" }, notice) : null,
      field("Email", "email", h("input", { type: "email", autocomplete: "username", required: true })),
      field("Password", "password", h("input", { type: "password", autocomplete: "current-password", required: true })),
      h("div", { class: "portal-actions" }, h("button", { type: "submit" }, "Log in")),
      statusLine(),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const status = form.querySelector(".portal-form-status");
      status.replaceChildren();
      const body = { email: form.elements.email.value.trim(), password: form.elements.password.value };
      if (!body.email || !body.password) return status.replaceChildren(h("p", { class: "portal-error" }, "Enter your email and password."));
      try {
        storeToken((await request("POST", "/api/auth/login", { json: body })).access_token);
        start();
      } catch (error) {
        status.replaceChildren(errorNote(error));
      }
    });
    show("login", form);
  }

  async function start() {
    if (!storedToken()) return showLogin();
    show("loading", h("p", { class: "loading" }, "Loading your booth…"));
    try {
      const me = await request("GET", "/api/auth/me");
      hook.me = me;
      if (me.role !== "exhibitor" && me.role !== "admin") {
        return show("message", h("p", {}, `You are logged in as ${me.display_name}, a ${me.role}. The portal is for exhibitors.`),
          h("button", { type: "button", onclick: () => signOut() }, "Log in as someone else"));
      }
      const booths = await findBooths(me);
      if (booths.length === 0) {
        return show("message", h("p", {}, "Your organisation has no booth yet. The organiser assigns booths: please ask them."),
          h("button", { type: "button", onclick: () => signOut() }, "Log out"));
      }
      const chosen = booths.find((b) => b.id === localStorage.getItem(BOOTH_KEY)) ?? booths[0];
      await showBooth(chosen, booths);
    } catch (error) {
      if (error.status === 401) return; // whenSignedOut has shown the login form
      show("error", errorNote(error), h("button", { type: "button", onclick: start }, "Try again"));
    }
  }

  function boothSwitcher(booth, booths) {
    if (booths.length < 2) return null;
    const select = h("select", { "aria-label": "Booth", onchange: () => {
      localStorage.setItem(BOOTH_KEY, select.value);
      start();
    } }, booths.map((b) => h("option", { value: b.id, selected: b.id === booth.id }, `${b.slot_number} · ${b.fascia_name}`)));
    return select;
  }

  async function showBooth(booth, booths) {
    const [products, hall] = await Promise.all([
      listAll(`/api/booths/${booth.id}/products`),
      request("GET", `/api/halls/${booth.hall_id}`),
    ]);
    if (disposed) return;
    Object.assign(hook, { booth, products: products.map((p) => p.id) });
    preview?.dispose();
    preview = createPreview(booth.hall_id, booth.id);
    hook.preview = preview.state;
    const uploadList = h("ol", { class: "portal-uploads", reversed: true });
    // A finished upload was published onto the booth: show the new version.
    const onUploaded = (result) => result.ok && preview?.reload();
    const title = h("h1", {}, booth.fascia_name);
    const list = h("div", { class: "portal-products" });
    const addEditor = (product, first = false) => {
      const editor = productEditor(product, { uploadList, onUploaded });
      if (first) list.prepend(editor);
      else list.append(editor);
    };
    products.forEach((p) => addEditor(p));
    const onCreated = (product) => {
      hook.products.push(product.id);
      addEditor(product, true);
    };
    show("ready",
      h("header", { class: "portal-head" },
        h("div", {}, title, h("p", {}, `${booth.organisation.name} · booth ${booth.slot_number} · ${hall.name}`)),
        h("nav", {}, boothSwitcher(booth, booths), h("a", { href: `#/hall/${booth.hall_id}` }, "Open the hall"),
          h("button", { type: "button", onclick: () => signOut() }, "Log out"))),
      h("div", { class: "portal-grid" },
        h("div", { class: "portal-main" },
          section("Your booth", brandingPanel(booth, { uploadList, onUploaded, onSaved: (b) => { title.textContent = b.fascia_name; } })),
          section("Products", newProductForm(booth.id, booth.organisation.country, onCreated), list)),
        h("aside", { class: "portal-side" },
          section("3D preview", preview.element, h("button", { type: "button", onclick: () => preview.reload() }, "Reload preview")),
          section("Uploads", h("p", { class: "portal-hint" }, "Files you upload appear here with their progress."), uploadList)),
      ),
    );
    preview.reload();
  }

  function dispose() {
    if (disposed) return;
    disposed = true;
    preview?.dispose();
    whenSignedOut(() => {});
    window.removeEventListener("hashchange", onRoute);
  }

  // The router replaces the page on another route: let go of the WebGL context then.
  function onRoute() {
    setTimeout(() => !root.isConnected && dispose(), 0);
  }

  whenSignedOut(() => !disposed && signOut("Your session has ended. Please log in again."));
  window.addEventListener("hashchange", onRoute);
  start();
  return { dispose };
}
