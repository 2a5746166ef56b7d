// Building DOM from untrusted data: text only goes through textContent, never innerHTML.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function flag(country) {
  // The ISO code as a badge: flag emoji need a colour emoji font that many systems lack.
  return /^[A-Z]{2}$/.test(country) ? country : "";
}

export function countryName(code, lang) {
  try {
    return new Intl.DisplayNames([lang], { type: "region" }).of(code) ?? code;
  } catch {
    return code;
  }
}

export function price(amount, currency, lang) {
  if (amount === null || amount === undefined) return "";
  try {
    return new Intl.NumberFormat(lang, { style: "currency", currency }).format(Number(amount));
  } catch {
    return `${amount} ${currency ?? ""}`;
  }
}
