// Small DOM helpers. Nothing here builds HTML from data: text goes in with textContent.
export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

export function para(text, className) {
  const p = document.createElement("p");
  if (className) p.className = className;
  p.textContent = text;
  return p;
}

export function idList(ids, total) {
  const ul = document.createElement("ul");
  ul.className = "preview-list";
  for (const id of ids.slice(0, 50)) {
    const li = document.createElement("li");
    li.textContent = id;
    ul.append(li);
  }
  if (total > Math.min(ids.length, 50)) {
    const li = document.createElement("li");
    li.textContent = `… and ${(total - Math.min(ids.length, 50)).toLocaleString()} more`;
    ul.append(li);
  }
  return ul;
}
