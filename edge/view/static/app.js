"use strict";
// The live view: one WebSocket to the view server, an overview layer (and a finer detail
// layer where the user zoomed) per scan, two synchronised views, progress and a spectrum.

const $ = (id) => document.getElementById(id);

const S = {
  gen: -1, W: 0, H: 0, level: 0, names: [], values: [], sigma: [], vmax: [],
  ov: null, det: null, view: null, sel: 0, selName: null, trustT: null, trustAuto: true,
  marked: null, dirty: true, pct: { key: "", lo: 0, hi: 1 }, ws: null,
};
// test and bench hooks: counters only, bounded
const stats = { regions: 0, lastRegionAt: 0, scans: 0, arrivals: [] };

// ---------------------------------------------------------------- the socket
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (ev) => (typeof ev.data === "string" ? onText(JSON.parse(ev.data)) : onRegion(ev.data));
  ws.onclose = () => {
    showLink({ ok: false, text: "the view server is not answering" });
    setTimeout(connect, 1000);
  };
  S.ws = ws;
}

function send(m) {
  if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(m));
}

function onText(m) {
  if (m.t === "scan") onScan(m);
  else if (m.t === "detail") onDetail(m);
  else if (m.t === "status") showStatus(m);
  else if (m.t === "link") showLink(m);
  else if (m.t === "pixel") drawSpectrum(m, S.values.map((i) => S.names[i]));
}

function onScan(m) {
  const same = S.scanId === m.scan_id && S.W === m.width && S.H === m.height && S.view;
  S.scanId = m.scan_id;
  S.gen = m.gen;
  S.W = m.width;
  S.H = m.height;
  S.level = m.level;
  const f = 1 << m.level;
  S.ov = m.width ? makeLayer(m.level, 0, 0, Math.ceil(m.width / f), Math.ceil(m.height / f)) : null;
  S.det = null;
  S.trustT = null;
  S.trustAuto = true;
  S.threshold = null;
  setNames(m.names);
  stats.scans++;
  if (same) changed();  // a resync of the same scan: keep the user's zoom
  else fit();
}

function onDetail(m) {
  if (m.level === undefined || !S.ov) {
    S.det = null;
  } else {
    const f = 1 << m.level;
    S.det = makeLayer(m.level, m.x / f, m.y / f, Math.ceil(m.w / f), Math.ceil(m.h / f));
  }
  S.dirty = true;
}

function onRegion(buf) {
  const hl = new DataView(buf).getUint32(0, true);
  const head = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, hl)));
  if (head.gen !== S.gen || !S.ov) return;
  const L = head.layer === "o" ? S.ov : S.det;
  if (!L || L.level !== head.level) return;
  if (head.topic === "elements") {
    if (head.names.join() !== S.names.join()) setNames(head.names);
    S.vmax = head.vmax;
  }
  if (head.topic === "trust") S.threshold = head.threshold;
  writeRegion(L, head, buf, 4 + hl);
  stats.regions++;
  stats.lastRegionAt = Date.now();
  stats.arrivals.push([stats.lastRegionAt, head.topic, head.layer, head.level, head.x, head.y, head.w, head.h, head.seq]);
  if (stats.arrivals.length > 400) stats.arrivals.splice(0, 200);
  S.dirty = true;
}

// element planes: values, and an optional `<name>_sigma` (or `_errors`) plane each
function setNames(names) {
  S.names = names.slice();
  S.values = [];
  S.sigma = [];
  names.forEach((n, i) => {
    if (n.endsWith("_sigma") || n.endsWith("_errors")) return;
    S.values.push(i);
    const sigma = names.indexOf(`${n}_sigma`);
    S.sigma.push(sigma >= 0 ? sigma : names.indexOf(`${n}_errors`));
  });
  const sel = $("element");
  sel.replaceChildren(...S.values.map((i, k) => new Option(names[i], String(k))));
  const keep = S.values.findIndex((i) => names[i] === S.selName);
  S.sel = keep >= 0 ? keep : 0;
  sel.value = String(S.sel);
  S.selName = names[S.values[S.sel]] || null;
  S.dirty = true;
}

// ---------------------------------------------------------------- drawing
function layers() {
  return [S.ov, S.det].filter((L) => L);
}

function scaleRange() {
  const valueIdx = S.values[S.sel];
  if (valueIdx === undefined) return [0, 1];
  if ($("scaling").value === "zero") return [0, Math.max(S.vmax[valueIdx] || 0, 1e-6)];
  const key = `${valueIdx}|${S.ov && S.ov.version}`, now = Date.now();
  if (S.pct.key !== key && (!S.pct.at || now - S.pct.at > 300) && S.ov && S.ov.el) {
    const [lo, hi] = percentiles(S.ov.el[valueIdx], [0.01, 0.99]);
    S.pct = { key, lo, hi: hi > lo ? hi : lo + 1e-6, at: now };
  }
  return [S.pct.lo, S.pct.hi];
}

// the daemon's calibrated threshold when it sends one (SPEC 4.4), else the top 5 % of this
// scan; the slider overrides either
function trustThreshold() {
  if (!S.ov || !S.ov.trust || !$("trust-toggle").checked) return null;
  const now = Date.now();  // the automatic one follows the scan, at most once a second
  if (S.trustT === null || (S.trustAuto && now - (S.trustAt || 0) > 1000)) {
    S.trustAt = now;
    let max = 0;
    for (const v of S.ov.trust) if (v > max) max = v;
    const calibrated = typeof S.threshold === "number";
    S.trustT = calibrated ? S.threshold : percentiles(S.ov.trust, [0.95])[0] || max || 1;
    S.trustMax = Math.max(max, 1.5 * S.trustT) || 1;
    $("trust-threshold").value = String(Math.round((1000 * S.trustT) / S.trustMax));
    $("trust-note").textContent = calibrated
      ? "(calibrated: 99.5 % of the training spectra score lower)"
      : "(no calibrated threshold: the top 5 % of this scan)";
  }
  $("trust-value").textContent = S.trustT.toPrecision(3);
  return S.trustT;
}

function drawAll() {
  if (!S.dirty) return;
  S.dirty = false;
  const T = trustThreshold(), on = $("trust-toggle").checked;
  const overlay = (topic) => (on ? (L) => maskCanvas(L, T, topic) : null);
  let used = null;
  drawView($("rgb-view"), layers(), (L) => L.rgbCanvas, overlay("rgb"), S.view, S.W, S.H, S.marked);
  const [lo, hi] = scaleRange();
  const valueIdx = S.values[S.sel], sigmaIdx = S.sigma[S.sel];
  drawView($("element-view"), layers(), (L) => {
    const got = valueIdx === undefined ? null : elementCanvas(L, valueIdx, sigmaIdx, lo, hi);
    if (got && L === S.ov) used = got[1];
    return got && got[0];
  }, overlay("elements"), S.view, S.W, S.H, S.marked);
  const name = S.names[valueIdx];
  const [blo, bhi] = used || [lo, hi];  // the scale the map is drawn with
  drawColorbar($("colorbar"), blo, bhi, name ? `${name} c/s` : "c/s");
  $("dl-legend").hidden = !(sigmaIdx >= 0);
  if (lastSpectrum && lastSpectrum.elementNames.join() !== S.values.map((i) => S.names[i]).join()) {
    drawSpectrum(lastSpectrum.m, S.values.map((i) => S.names[i]));
  }
}

// ---------------------------------------------------------------- the view transform
// s, sy: screen pixels per scan pixel (sy may exceed s: a line scan's rows stay visible)
function fit() {
  const c = $("rgb-view");
  if (!S.W) {
    S.view = null;
    S.dirty = true;
    return;
  }
  const s = Math.min(c.width / S.W, c.height / S.H), minPx = 24;
  const sx = S.W * s < minPx ? Math.min(c.width, minPx) / S.W : s;
  const sy = S.H * s < minPx ? Math.min(c.height, minPx) / S.H : s;
  S.view = { s: sx, sy, ox: (S.W - c.width / sx) / 2, oy: (S.H - c.height / sy) / 2, fit: sx };
  changed();
}

let detailTimer = null;
function changed() {
  S.dirty = true;
  clearTimeout(detailTimer);
  detailTimer = setTimeout(requestDetail, 200);
}

// ask for finer pixels over what is visible (the server decides whether it needs any)
function requestDetail() {
  if (!S.view || S.level === 0) return;
  const c = $("rgb-view"), v = S.view;
  const x0 = Math.max(0, Math.floor(v.ox)), y0 = Math.max(0, Math.floor(v.oy));
  const x1 = Math.min(S.W, Math.ceil(v.ox + c.width / v.s)), y1 = Math.min(S.H, Math.ceil(v.oy + c.height / v.sy));
  const whole = x1 <= x0 || y1 <= y0 || (x0 === 0 && y0 === 0 && x1 === S.W && y1 === S.H);
  send({ op: "zoom", rect: whole ? null : [x0, y0, x1 - x0, y1 - y0] });
}

function scanXY(canvas, ev) {
  const r = canvas.getBoundingClientRect(), v = S.view;
  const px = ((ev.clientX - r.left) * canvas.width) / r.width, py = ((ev.clientY - r.top) * canvas.height) / r.height;
  return [px, py, Math.floor(v.ox + px / v.s), Math.floor(v.oy + py / v.sy)];
}

let drag = null;
function attach(canvas) {
  canvas.addEventListener("wheel", (ev) => {
    if (!S.view) return;
    ev.preventDefault();
    const v = S.view, [px, py] = scanXY(canvas, ev), k = ev.deltaY < 0 ? 1.25 : 0.8;
    const cx = v.ox + px / v.s, cy = v.oy + py / v.sy;
    const ns = Math.min(64, Math.max(v.fit / 2, v.s * k)), r = ns / v.s;
    v.s = ns;
    v.sy *= r;
    v.ox = cx - px / v.s;
    v.oy = cy - py / v.sy;
    changed();
  }, { passive: false });
  canvas.addEventListener("pointerdown", (ev) => {
    if (!S.view) return;
    drag = { x: ev.clientX, y: ev.clientY, ox: S.view.ox, oy: S.view.oy, moved: false };
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (!S.view) return;
    if (drag && ev.buttons) {
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.moved) {
        S.view.ox = drag.ox - dx / S.view.s;
        S.view.oy = drag.oy - dy / S.view.sy;
        changed();
      }
    }
    readout(canvas, ev);
  });
  canvas.addEventListener("pointerup", (ev) => {
    if (drag && !drag.moved && S.view) {
      const [, , x, y] = scanXY(canvas, ev);
      if (x >= 0 && y >= 0 && x < S.W && y < S.H) askPixel(x, y);
    }
    drag = null;
  });
  canvas.addEventListener("dblclick", fit);
}

function askPixel(x, y) {
  S.marked = { x, y };
  S.dirty = true;
  $("spectrum-title").textContent = `Pixel (${x}, ${y}): asking the daemon…`;
  send({ op: "pixel", x, y });
}

// the values under the cursor: exact from a level-0 layer, else the block mean shown
function readout(canvas, ev) {
  const [, , x, y] = scanXY(canvas, ev);
  if (x < 0 || y < 0 || x >= S.W || y >= S.H) {
    $("readout").textContent = "";
    return;
  }
  const L = [S.det, S.ov].find((l) => l && (x >> l.level) >= l.x && (x >> l.level) < l.x + l.w
    && (y >> l.level) >= l.y && (y >> l.level) < l.y + l.h);
  if (!L) return;
  const i = ((y >> L.level) - L.y) * L.w + ((x >> L.level) - L.x), parts = [`x ${x}  y ${y}`];
  const d = L.rgbImg.data;
  if (d[i * 4 + 3]) parts.push(`RGB ${d[i * 4]} ${d[i * 4 + 1]} ${d[i * 4 + 2]}`);
  const valueIdx = S.values[S.sel];
  if (L.el && valueIdx !== undefined) {
    const v = L.el[valueIdx][i], sg = S.sigma[S.sel] >= 0 ? L.el[S.sigma[S.sel]][i] : null;
    parts.push(`${S.names[valueIdx]} ${fmtValue(v)} c/s` + (sg !== null ? ` ± ${fmtValue(sg)}` : "")
      + (v < 0 ? " (shown as 0)" : ""));
  }
  if (L.trust) parts.push(`trust score ${L.trust[i].toPrecision(3)}`);
  if (L.level) parts.push(`(mean of ${1 << L.level}×${1 << L.level} pixels: zoom in for single pixels)`);
  $("readout").textContent = parts.join(" · ");
}

// ---------------------------------------------------------------- wiring
$("element").addEventListener("change", () => {
  S.sel = Number($("element").value);
  S.selName = S.names[S.values[S.sel]];
  S.dirty = true;
});
$("scaling").addEventListener("change", () => {
  for (const L of layers()) L.elUsed = null;  // the user's choice applies at once
  S.dirty = true;
});
$("trust-toggle").addEventListener("change", () => { S.dirty = true; });
$("trust-threshold").addEventListener("input", () => {
  S.trustAuto = false;
  S.trustT = ((S.trustMax || 1) * Number($("trust-threshold").value)) / 1000;
  S.dirty = true;
});
$("spectrum-log").addEventListener("change", () => {
  if (lastSpectrum) drawSpectrum(lastSpectrum.m, lastSpectrum.elementNames);
});
attach($("rgb-view"));
attach($("element-view"));
setInterval(drawAll, 100);
connect();

// test and bench hooks (read-only views of what the page holds)
window.__view = {
  stats,
  state: () => ({ gen: S.gen, W: S.W, H: S.H, level: S.level, names: S.names, sel: S.sel,
    detail: S.det && [S.det.level, S.det.x, S.det.y, S.det.w, S.det.h] }),
  rgb: () => {  // the overview's RGB as a flat array (r, g, b per pixel)
    if (!S.ov) return [];
    const d = S.ov.rgbImg.data, out = new Array((d.length / 4) * 3);
    for (let i = 0, j = 0; i < d.length; i += 4) { out[j++] = d[i]; out[j++] = d[i + 1]; out[j++] = d[i + 2]; }
    return out;
  },
  plane: (i) => (S.ov && S.ov.el ? Array.from(S.ov.el[i]) : []),
  canvasHash: (id) => {
    const c = $(id), d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let h = 2166136261;
    for (let i = 0; i < d.length; i++) h = Math.imul(h ^ d[i], 16777619);
    return h >>> 0;
  },
  screenOf: (x, y) => {  // CSS pixels from the view canvas's top-left to scan pixel (x, y)
    const c = $("rgb-view"), r = c.getBoundingClientRect(), v = S.view;
    return [((x + 0.5 - v.ox) * v.s * r.width) / c.width, ((y + 0.5 - v.oy) * v.sy * r.height) / c.height];
  },
  spectrum: () => (lastSpectrum ? lastSpectrum.m : null),
  canvasPixel: (id, x, y) => {  // [r, g, b] drawn at the centre of scan pixel (x, y)
    const v = S.view, c = $(id);
    const d = c.getContext("2d").getImageData(Math.floor((x + 0.5 - v.ox) * v.s),
      Math.floor((y + 0.5 - v.oy) * v.sy), 1, 1).data;
    return [d[0], d[1], d[2]];
  },
  zoomTo: (x, y, w, h) => {  // as the wheel would, for tests: show [x, y, w, h] of the scan
    const c = $("rgb-view"), s = Math.min(c.width / w, c.height / h);
    S.view = { s, sy: s, ox: x, oy: y, fit: S.view ? S.view.fit : s };
    changed();
  },
};
