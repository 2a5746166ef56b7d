// The booth's look: the organiser's structure (shell, corner or island: the slot's template,
// which only an admin changes), and what the exhibitor may change with PATCH /booths/{id}
// (booths.py BoothUpdate): fascia name, tagline and the two colours, picked from a style or
// freely. Plus the logo upload.
import { h } from "../dom.js";
import { request } from "./client.js";
import { clearErrors, field, showApiError, showFieldError, statusLine } from "./ui.js";
import { PHOTO_ACCEPT, filePicker, startUpload } from "./uploads.js";

// Colour pairs that read well on a fascia (white text on the primary colour).
export const STYLES = [
  { name: "Harbour", primary: "#1f4e79", accent: "#f2c14e" },
  { name: "Forest", primary: "#2d5a27", accent: "#e8c547" },
  { name: "Terracotta", primary: "#9c3d1f", accent: "#f4d6a0" },
  { name: "Plum", primary: "#5b2a56", accent: "#f0b8d0" },
  { name: "Slate", primary: "#34404b", accent: "#5ec4b6" },
  { name: "Crimson", primary: "#8e1b2c", accent: "#e9c46a" },
];

const TEMPLATE_WORDS = {
  shell: "a shell booth: a back wall and two side walls, open at the front",
  corner: "a corner booth: open at the front and on one side",
  island: "an island booth: open on all four sides",
};

const CHECKS = {
  fascia_name: (v) => (v.trim() === "" ? "The fascia needs a name." : v.length > 80 ? "At most 80 characters." : null),
  tagline: (v) => (v.length > 200 ? "At most 200 characters." : null),
  primary_color: (v) => (/^#[0-9a-f]{6}$/i.test(v) ? null : "A colour like #1f4e79."),
  accent_color: (v) => (/^#[0-9a-f]{6}$/i.test(v) ? null : "A colour like #f2c14e."),
};

function styleCard(style, onPick) {
  return h(
    "button",
    { type: "button", class: "portal-style", dataset: { style: style.name }, "aria-pressed": "false", onclick: () => onPick(style) },
    h("span", { class: "portal-swatch", style: `background:${style.primary}` }),
    h("span", { class: "portal-swatch", style: `background:${style.accent}` }),
    h("span", {}, style.name),
  );
}

function markStyle(cards, primary, accent) {
  for (const card of cards) {
    const style = STYLES.find((s) => s.name === card.dataset.style);
    const on = style.primary === primary.toLowerCase() && style.accent === accent.toLowerCase();
    card.setAttribute("aria-pressed", String(on));
  }
}

// brandingPanel(booth, {uploadList, onSaved(booth), onUploaded(result)}) -> HTMLElement
export function brandingPanel(initial, ctx) {
  let booth = initial;
  const color = (value) => h("input", { type: "color", value });
  const form = h("form", { class: "portal-form portal-branding", novalidate: true });
  const cards = STYLES.map((style) => styleCard(style, (picked) => {
    form.elements.namedItem("primary_color").value = picked.primary;
    form.elements.namedItem("accent_color").value = picked.accent;
    markStyle(cards, picked.primary, picked.accent);
  }));
  form.append(
    h("p", { class: "portal-template" }, `Booth ${booth.slot_number} is ${TEMPLATE_WORDS[booth.template] ?? booth.template}. The organiser chose this layout.`),
    h("div", { class: "portal-styles", role: "group", "aria-label": "Booth style" }, cards),
    h("div", { class: "portal-row" },
      field("Primary colour", "primary_color", color(booth.primary_color), "The fascia and walls"),
      field("Accent colour", "accent_color", color(booth.accent_color), "Trims and highlights"),
    ),
    field("Fascia name", "fascia_name", h("input", { type: "text", value: booth.fascia_name, maxlength: 80, required: true })),
    field("Tagline", "tagline", h("input", { type: "text", value: booth.tagline, maxlength: 200 })),
    h("div", { class: "portal-actions" }, h("button", { type: "submit" }, "Save booth")),
    h("p", { class: "portal-hint" }, "Saved changes reach the open hall within seconds (once the organiser has published the hall)."),
    statusLine(),
  );
  markStyle(cards, booth.primary_color, booth.accent_color);
  for (const key of ["primary_color", "accent_color"]) {
    form.elements.namedItem(key).addEventListener("input", () =>
      markStyle(cards, form.elements.namedItem("primary_color").value, form.elements.namedItem("accent_color").value));
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const patch = {};
    let ok = true;
    for (const key of Object.keys(CHECKS)) {
      const value = form.elements.namedItem(key).value.trim();
      const message = CHECKS[key](value);
      if (message) {
        showFieldError(form, key, message);
        ok = false;
      }
      const current = String(booth[key] ?? "");
      // Colours compare without case: <input type=color> answers lowercase.
      const same = key.endsWith("_color") ? value.toLowerCase() === current.toLowerCase() : value === current;
      if (!same) patch[key] = value;
    }
    const status = form.querySelector(".portal-form-status");
    if (!ok) return;
    if (Object.keys(patch).length === 0) return status.replaceChildren(h("p", { class: "portal-ok" }, "Nothing changed."));
    try {
      booth = await request("PATCH", `/api/booths/${booth.id}`, { json: patch });
      status.replaceChildren(h("p", { class: "portal-ok", dataset: { saved: "true" } }, "Saved."));
      ctx.onSaved?.(booth);
    } catch (error) {
      showApiError(form, error);
    }
  });
  const current = h("img", { alt: "Current logo", class: "portal-logo-img", hidden: !booth.logo_url, src: booth.logo_url });
  const logo = filePicker("Upload a logo", PHOTO_ACCEPT, async (chosen) => {
    const result = await startUpload({ kind: "logo", label: "logo", boothId: booth.id }, chosen[0], ctx.uploadList);
    ctx.onUploaded?.(result);
    if (!result.ok) return;
    const fresh = await request("GET", `/api/booths/${booth.id}`).catch(() => null);
    if (fresh?.logo_url) {
      current.src = fresh.logo_url;
      current.hidden = false;
    }
  }, { name: "logo" });
  return h("div", {}, form, h("div", { class: "portal-logo" }, current, logo));
}
