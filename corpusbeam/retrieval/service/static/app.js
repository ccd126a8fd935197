// The corpusbeam search page: the same POST /search every client uses, state in the URL.
"use strict";

const KEY = "corpusbeam-api-key";
const $ = (id) => document.getElementById(id);
const SNIPPET_WORDS = 40; // a hit's text is shown as its best window of this many words
// cursors[i]: what asks for page i (null: the first); the service pins the version
const state = { indexes: {}, image: null, imageLabel: "", cursors: [null], page: 0 };

function headers(json) {
  const h = {};
  const key = sessionStorage.getItem(KEY);
  if (key) h["api-key"] = key;
  if (json) h["content-type"] = "application/json";
  return h;
}

async function api(path, body) {
  const init = body === undefined ? { headers: headers(false) }
    : { method: "POST", headers: headers(true), body: JSON.stringify(body) };
  const r = await fetch(path, init);
  if (!r.ok) {
    let message = `${r.status} ${r.statusText}`;
    try { const e = (await r.json()).error; if (e) message = `${r.status} ${e.code}: ${e.message}`; } catch (_) { /* not JSON */ }
    const err = new Error(message);
    err.status = r.status;
    throw err;
  }
  return r;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// ---- the indexes and their filters -------------------------------------------------

async function loadIndexes() {
  let names;
  try {
    names = (await (await api("/indexes")).json()).indexes.map((i) => i.name);
  } catch (e) {
    if (e.status === 401) { $("key-box").open = true; showError("This service needs a key: enter it under \"service key\"."); }
    else showError(`Could not list the indexes: ${e.message}`);
    return false;
  }
  const sel = $("index");
  sel.innerHTML = "";
  if (names.length > 1) sel.append(new Option("all", ""));
  for (const n of names) {
    sel.append(new Option(n, n));
    state.indexes[n] = await (await api(`/indexes/${encodeURIComponent(n)}/fields`)).json();
  }
  $("index-label").hidden = names.length < 2;
  showError("");
  return true;
}

function selectedIndexes() {
  const v = $("index").value;
  return v ? [state.indexes[v]].filter(Boolean) : Object.values(state.indexes);
}

function buildFilters() {
  const chosen = selectedIndexes();
  const lexical = chosen.length && chosen.every((i) => i.lexical);
  $("mode-label").hidden = !lexical;
  // No mode sent: the service's default, which is what this option says.
  $("mode-default").textContent = `default (${lexical ? "hybrid" : "dense"})`;
  const byName = new Map();
  chosen.forEach((info, n) => {
    for (const c of info.columns) {
      if (n === 0) byName.set(c.name, { ...c, values: c.values ? [...c.values] : undefined, seen: 1 });
      else if (byName.has(c.name)) {
        const m = byName.get(c.name);
        m.seen += 1;
        if (m.values && c.values) for (const v of c.values) if (!m.values.includes(v)) m.values.push(v);
      }
    }
  });
  const list = $("filter-list");
  list.innerHTML = "";
  for (const c of byName.values()) {
    if (c.seen !== chosen.length) continue; // only columns every searched index has
    const label = document.createElement("label");
    label.append(`${c.name} `);
    if (c.values) {
      const s = document.createElement("select");
      s.id = `filter-${c.name}`;
      s.dataset.column = c.name;
      s.dataset.type = c.type;
      s.append(new Option("any", ""));
      for (const v of c.values) s.append(new Option(String(v), String(v)));
      label.append(s);
    } else {
      for (const side of ["min", "max"]) {
        const i = document.createElement("input");
        i.type = "number";
        i.id = `filter-${c.name}-${side}`;
        i.placeholder = `${side} ${c[side]}`;
        i.dataset.column = c.name;
        i.dataset.side = side;
        label.append(i);
      }
    }
    list.append(label);
  }
  $("filters").hidden = !list.children.length;
}

function typed(value, type) {
  if (type === "integer" || type === "number") return Number(value);
  if (type === "boolean") return value === "true";
  return value;
}

function filterFromForm() {
  const filter = {};
  for (const el of $("filter-list").querySelectorAll("select, input")) {
    if (el.value === "") continue;
    const col = el.dataset.column;
    if (el.tagName === "SELECT") filter[col] = typed(el.value, el.dataset.type);
    else (filter[col] = filter[col] || {})[el.dataset.side === "min" ? "$gte" : "$lte"] = Number(el.value);
  }
  return Object.keys(filter).length ? filter : null;
}

// ---- the URL holds the query ------------------------------------------------------

function writeUrl(extra) {
  const p = new URLSearchParams();
  if ($("q").value.trim() && !(extra && extra.like)) p.set("q", $("q").value);
  if (extra && extra.like) p.set("like", extra.like);
  p.set("k", $("k").value || "10");
  if ($("index").value) p.set("index", $("index").value);
  if (!$("mode-label").hidden && $("mode").value) p.set("mode", $("mode").value);
  if ($("group").checked) p.set("group", "1");
  for (const el of $("filter-list").querySelectorAll("select, input")) {
    if (el.value === "") continue;
    p.set(el.dataset.side ? `f.${el.dataset.column}.${el.dataset.side}` : `f.${el.dataset.column}`, el.value);
  }
  history.pushState(null, "", `${location.pathname}?${p}`);
}

function readUrl() {
  const p = new URLSearchParams(location.search);
  $("q").value = p.get("q") || "";
  $("k").value = p.get("k") || "10";
  if (p.has("index") && state.indexes[p.get("index")]) $("index").value = p.get("index");
  buildFilters();
  $("mode").value = p.get("mode") || "";
  $("group").checked = p.get("group") === "1";
  for (const el of $("filter-list").querySelectorAll("select, input")) {
    const name = el.dataset.side ? `f.${el.dataset.column}.${el.dataset.side}` : `f.${el.dataset.column}`;
    el.value = p.get(name) || "";
  }
  return p;
}

async function runFromUrl() {
  const p = readUrl();
  if (p.get("like")) {
    await likeImage(p.get("index") || Object.keys(state.indexes)[0], p.get("like"));
  } else if (p.get("q")) {
    clearImage();
    await search();
  }
}

// ---- images ----------------------------------------------------------------------

function readAsDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const fr = new FileReader();
    fr.onload = () => resolve(fr.result);
    fr.onerror = () => reject(fr.error);
    fr.readAsDataURL(blob);
  });
}

async function useImage(blob, label) {
  state.image = await readAsDataUrl(blob);
  state.imageLabel = label;
  $("image-thumb").src = state.image;
  $("image-preview").hidden = false;
}

function clearImage() {
  state.image = null;
  $("image-preview").hidden = true;
  $("image").value = "";
}

async function thumbnailBlob(index, documentId) {
  const q = new URLSearchParams({ document: documentId });
  return (await api(`/thumbnails/${encodeURIComponent(index)}?${q}`)).blob();
}

async function likeImage(index, documentId) {
  try {
    await useImage(await thumbnailBlob(index, documentId), `like ${documentId}`);
  } catch (e) { showError(`No thumbnail for ${documentId} in ${index}: ${e.message}`); return; }
  if (state.indexes[index]) { $("index").value = index; }
  await search();
}

// ---- searching and the results ----------------------------------------------------

async function search(page = 0) {
  const body = { k: Number($("k").value) || 10 };
  if (state.image) body.image = state.image;
  else if ($("q").value.trim()) body.query = $("q").value;
  else { showError("Type a query, or choose or paste an image."); return; }
  if ($("index").value) body.index = $("index").value;
  if (!$("mode-label").hidden && $("mode").value && !state.image) body.mode = $("mode").value;
  if ($("group").checked) body.group = true;
  if (body.query) body.snippet = SNIPPET_WORDS;
  const filter = filterFromForm();
  if (filter) body.filter = filter;
  if (page === 0) state.cursors = [null];
  if (state.cursors[page]) body.cursor = state.cursors[page];
  $("status").textContent = "searching...";
  try {
    const answer = await (await api("/search", body)).json();
    showError("");
    state.page = page;
    state.cursors.length = page + 1;
    state.cursors.push(answer.next_cursor || null);
    const what = state.image ? `image ${state.imageLabel}` : JSON.stringify(body.query);
    const count = answer.groups ? `${answer.groups.length} documents` : `${answer.hits.length} hits`;
    $("status").textContent = `${count} for ${what} in ${answer.took_ms.toFixed(1)} ms`;
    showAnswered(answer);
    render(answer);
    showPager(answer);
  } catch (e) {
    $("status").textContent = "";
    $("results").innerHTML = "";
    showError(e.message);
  }
}

// What answered: the mode, and the fusion when the service says (hybrid answers).
function showAnswered(answer) {
  const box = $("answered");
  box.innerHTML = "";
  const mode = document.createElement("span");
  mode.id = "answered-mode";
  mode.textContent = `mode: ${answer.mode}`;
  box.append(mode);
  const f = answer.fusion;
  if (f) {
    const fusion = document.createElement("span");
    fusion.id = "answered-fusion";
    const w = Object.entries(f.weights || {}).map(([k, v]) => `${k} ${Number(v).toFixed(2)}`).join(", ");
    fusion.textContent = `fusion: ${f.method}${w ? ` (${w})` : ""}${f.tuned ? ", tuned" : ""}`;
    box.append(fusion);
  }
}

function showPager(answer) {
  $("pager").hidden = state.page === 0 && !answer.next_cursor;
  $("prev").disabled = state.page === 0;
  $("next").disabled = !answer.next_cursor;
  $("page-no").textContent = `page ${state.page + 1}`;
}

// A hit's text: its snippet (the best window) with the service's highlights, which mark
// the query's terms as the lexical index reads them (never stopwords); else the text.
function textOf(h) {
  const div = document.createElement("div");
  div.className = "text";
  const sn = h.snippet;
  if (!sn) { div.textContent = h.text; return div; }
  if (sn.start > 0) div.append("… ");
  let last = 0;
  for (const [a, b] of sn.highlights) {
    div.append(sn.text.slice(last, a));
    const mark = document.createElement("mark");
    mark.textContent = sn.text.slice(a, b);
    div.append(mark);
    last = b;
  }
  div.append(sn.text.slice(last));
  if (sn.end < (h.text || "").length) div.append(" …");
  return div;
}

function render(answer) {
  const ol = $("results");
  ol.innerHTML = "";
  if (!answer.groups) { for (const h of answer.hits) ol.append(hitItem(h)); return; }
  for (const g of answer.groups) {
    const li = document.createElement("li");
    li.className = "group";
    li.dataset.document = g.document_id;
    li.dataset.count = g.count;
    const title = document.createElement("div");
    title.className = "title";
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = `${g.count} matching chunk${g.count === 1 ? "" : "s"}`;
    title.append(g.document_id || "(no document id)", count);
    const inner = document.createElement("ol");
    for (const h of g.hits) inner.append(hitItem(h));
    li.append(title, inner);
    ol.append(li);
  }
}

function hitItem(h) {
  const li = document.createElement("li");
  li.className = "hit";
  const index = h.index || $("index").value || Object.keys(state.indexes)[0];
  li.dataset.id = h.id;
  li.dataset.index = index;
  li.dataset.document = h.document_id;
  const md = h.metadata || {};
  li.dataset.modality = md.modality || "";
  const isImage = md.modality === "image" && state.indexes[index] && state.indexes[index].thumbnails;
  if (isImage) {
    const img = document.createElement("img");
    img.className = "thumb";
    img.alt = h.document_id;
    thumbnailBlob(index, h.document_id).then((b) => { img.src = URL.createObjectURL(b); }).catch(() => { img.alt = "no thumbnail"; });
    li.append(img);
  }
  const body = document.createElement("div");
  body.className = "body";
  const title = document.createElement("div");
  title.className = "title";
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = Number(h.score).toFixed(4);
  title.append(score, h.document_id || String(h.id));
  const meta = document.createElement("div");
  meta.className = "meta";
  const extras = Object.entries(md).filter(([k, v]) => v !== null && !["char_start", "char_end", "content_hash"].includes(k));
  meta.textContent = [h.uri, index, ...extras.map(([k, v]) => `${k}: ${v}`)].filter(Boolean).join(" · ");
  body.append(title, meta);
  if (h.text) body.append(textOf(h));
  const more = document.createElement("button");
  more.type = "button";
  more.className = "link more";
  more.textContent = "more like this";
  more.addEventListener("click", () => moreLikeThis(h, index, isImage));
  body.append(more);
  li.append(body);
  return li;
}

async function moreLikeThis(hit, index, isImage) {
  if (state.indexes[index]) $("index").value = index;
  if (isImage) {
    writeUrl({ like: hit.document_id });
    await likeImage(index, hit.document_id);
  } else {
    clearImage();
    $("q").value = (hit.text || hit.document_id || "").slice(0, 1000);
    writeUrl();
    await search();
  }
}

// ---- wiring -------------------------------------------------------------------------

async function start() {
  $("api-key").value = sessionStorage.getItem(KEY) || "";
  $("save-key").addEventListener("click", async () => {
    sessionStorage.setItem(KEY, $("api-key").value);
    if (await loadIndexes()) { $("key-box").open = false; await runFromUrl(); }
  });
  $("search-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if ($("q").value.trim()) clearImage();
    writeUrl();
    await search();
  });
  $("index").addEventListener("change", () => buildFilters());
  $("image").addEventListener("change", async () => {
    const f = $("image").files[0];
    if (!f) return;
    await useImage(f, f.name);
    $("q").value = "";
    writeUrl();
    await search();
  });
  $("clear-image").addEventListener("click", clearImage);
  $("next").addEventListener("click", () => search(state.page + 1));
  $("prev").addEventListener("click", () => search(state.page - 1));
  document.addEventListener("paste", async (ev) => {
    const item = [...(ev.clipboardData || {}).items || []].find((i) => i.type.startsWith("image/"));
    if (!item) return;
    ev.preventDefault();
    await useImage(item.getAsFile(), "pasted");
    $("q").value = "";
    writeUrl();
    await search();
  });
  window.addEventListener("popstate", runFromUrl);
  if (await loadIndexes()) await runFromUrl();
}

start();
