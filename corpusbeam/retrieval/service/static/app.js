// The corpusbeam search page: the same POST /search every client uses, state in the URL.
"use strict";

const KEY = "corpusbeam-api-key";
const $ = (id) => document.getElementById(id);
const state = { indexes: {}, image: null, imageLabel: "" };

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
  $("mode-label").hidden = !(chosen.length && chosen.every((i) => i.lexical));
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
  if (!$("mode-label").hidden && $("mode").value !== "dense") p.set("mode", $("mode").value);
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
  if (p.has("mode")) $("mode").value = p.get("mode");
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

async function search() {
  const body = { k: Number($("k").value) || 10 };
  if (state.image) body.image = state.image;
  else if ($("q").value.trim()) body.query = $("q").value;
  else { showError("Type a query, or choose or paste an image."); return; }
  if ($("index").value) body.index = $("index").value;
  if (!$("mode-label").hidden && $("mode").value !== "dense" && !state.image) body.mode = $("mode").value;
  const filter = filterFromForm();
  if (filter) body.filter = filter;
  $("status").textContent = "searching...";
  try {
    const answer = await (await api("/search", body)).json();
    showError("");
    const what = state.image ? `image ${state.imageLabel}` : JSON.stringify(body.query);
    $("status").textContent = `${answer.hits.length} hits for ${what} in ${answer.took_ms.toFixed(1)} ms`;
    render(answer.hits, body.query || "");
  } catch (e) {
    $("status").textContent = "";
    $("results").innerHTML = "";
    showError(e.message);
  }
}

function terms(query) {
  return [...new Set((query.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) || []))];
}

function highlighted(text, query) {
  const span = document.createElement("div");
  span.className = "text";
  const words = terms(query).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (!words.length) { span.textContent = text; return span; }
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(${words.join("|")})(?![\\p{L}\\p{N}])`, "giu");
  let last = 0;
  for (const m of text.matchAll(re)) {
    span.append(text.slice(last, m.index));
    const mark = document.createElement("mark");
    mark.textContent = m[0];
    span.append(mark);
    last = m.index + m[0].length;
  }
  span.append(text.slice(last));
  return span;
}

function render(hits, query) {
  const ol = $("results");
  ol.innerHTML = "";
  for (const h of hits) {
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
    if (h.text) body.append(highlighted(h.text, query));
    const more = document.createElement("button");
    more.type = "button";
    more.className = "link more";
    more.textContent = "more like this";
    more.addEventListener("click", () => moreLikeThis(h, index, isImage));
    body.append(more);
    li.append(body);
    ol.append(li);
  }
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
