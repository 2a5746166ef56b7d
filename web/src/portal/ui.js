// Small building blocks of the portal's forms: an error note, labelled fields with a slot for
// their validation message, and the mapping of the API's `details` onto those slots.
import { h } from "../dom.js";
import { plainWords } from "./messages.js";

// An error in plain words with its stable code in small print (textContent only).
export function errorNote(error) {
  const code = error?.code ?? "error";
  return h(
    "p",
    { class: "portal-error", role: "alert", dataset: { code } },
    h("span", { class: "portal-error-text" }, plainWords(code)),
    " ",
    h("small", { class: "portal-code" }, code),
  );
}

// A labelled input; `key` names it in the form and in the API's error `loc` ("names.ru").
export function field(label, key, input, hint) {
  input.name = key;
  input.id = input.id || `f-${Math.random().toString(36).slice(2, 10)}`;
  return h(
    "div",
    { class: "portal-field", dataset: { field: key } },
    h("label", { for: input.id }, label),
    input,
    hint ? h("small", { class: "portal-hint" }, hint) : null,
    h("span", { class: "portal-field-error", role: "alert", dataset: { errorFor: key } }),
  );
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  form.querySelector(".portal-form-status")?.replaceChildren();
}

// Put `message` next to the field `key`; false when the form has no such field.
export function showFieldError(form, key, message) {
  const slot = [...form.querySelectorAll("[data-error-for]")].find((s) => s.dataset.errorFor === key);
  if (!slot) return false;
  slot.textContent = message;
  form.elements.namedItem(key)?.setAttribute("aria-invalid", "true");
  return true;
}

// The API's validation details (`loc` like ["body", "names", "ru"]) next to their fields;
// what matches no field goes in the form's status line.
export function showApiError(form, error, aliases = {}) {
  const status = form.querySelector(".portal-form-status");
  const leftover = [];
  for (const detail of error.details ?? []) {
    const key = (detail.loc ?? []).slice(1).join(".");
    const message = String(detail.msg ?? "").replace(/^Value error, /, "");
    if (!showFieldError(form, key, message)) leftover.push(message);
  }
  const aliased = aliases[error.code] ?? aliasFromMessage(error.message, aliases);
  if (aliased) showFieldError(form, aliased, plainWordsOr(error));
  status?.replaceChildren(errorNote(error));
  if (leftover.length && status) status.append(h("small", { class: "portal-hint" }, leftover.join("; ")));
}

function aliasFromMessage(message, aliases) {
  for (const [pattern, key] of Object.entries(aliases)) {
    if (pattern.startsWith("/") && new RegExp(pattern.slice(1), "i").test(message ?? "")) return key;
  }
  return null;
}

function plainWordsOr(error) {
  return error.code === "validation_error" ? error.message : plainWords(error.code);
}

export function statusLine() {
  return h("div", { class: "portal-form-status", "aria-live": "polite" });
}
