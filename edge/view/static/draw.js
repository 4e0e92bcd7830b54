"use strict";
// Layers (an overview, and a finer detail where the user zoomed) and how they are drawn.
// A layer holds one level's pixels of every topic: RGB in an offscreen canvas, element
// planes and trust as Float32Arrays, rendered to offscreen canvases when they change.

const GREY = [128, 128, 128];  // below the detection limit
const LUT = viridis();

// viridis as a polynomial (a public-domain fit); 256 entries of [r, g, b]
function viridis() {
  const c = [[0.2777, 0.0054, 0.3341], [0.1051, 1.4046, 1.3846], [-0.3309, 0.2148, 0.0951],
    [-4.6342, -5.7991, -19.3324], [6.2283, 14.1799, 56.6906], [4.7764, -13.7451, -65.3530],
    [-5.4355, 4.6459, 26.3124]];
  const out = [];
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    out.push([0, 1, 2].map((k) => {
      let v = 0;
      for (let j = 6; j >= 0; j--) v = v * t + c[j][k];
      return Math.max(0, Math.min(255, Math.round(255 * v)));
    }));
  }
  return out;
}

function makeLayer(level, x, y, w, h) {
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  return {
    level, x, y, w, h, version: 0,
    rgbCanvas: canvas, rgbCtx: canvas.getContext("2d"), rgbImg: new ImageData(w, h),
    el: null, names: null, trust: null, domain: {},
    // what changed since each offscreen canvas was last rendered: [x0, y0, x1, y1] or null
    dirty: { elements: null, mask_rgb: null, mask_elements: null },
    elCanvas: null, elUsed: null, elFullAt: 0,
  };
}

// Copy one region message's payload into a layer (x, y in the layer's level pixels).
function writeRegion(L, head, buf, off) {
  const rx = head.x - L.x, ry = head.y - L.y, w = head.w, h = head.h;
  if (rx < 0 || ry < 0 || rx + w > L.w || ry + h > L.h) return false;
  if (head.domain) {  // the out-of-domain mask follows the data
    const bytes = w * h * (head.topic === "rgb" ? 3 : head.topic === "trust" ? 4 : 4 * head.names.length);
    const src = new Uint8Array(buf, off + bytes, w * h);
    const dst = L.domain[head.topic] || (L.domain[head.topic] = new Uint8Array(L.w * L.h));
    for (let j = 0; j < h; j++) dst.set(src.subarray(j * w, j * w + w), (ry + j) * L.w + rx);
  }
  if (head.topic === "rgb") {
    const src = new Uint8Array(buf, off, w * h * 3), d = L.rgbImg.data;
    for (let j = 0; j < h; j++) {
      let s = j * w * 3, t = ((ry + j) * L.w + rx) * 4;
      for (let i = 0; i < w; i++, s += 3, t += 4) {
        d[t] = src[s]; d[t + 1] = src[s + 1]; d[t + 2] = src[s + 2]; d[t + 3] = 255;
      }
    }
    L.rgbCtx.putImageData(L.rgbImg, 0, 0, rx, ry, w, h);
  } else if (head.topic === "elements") {
    const E = head.names.length;
    if (!L.el || L.names.join() !== head.names.join()) {
      L.el = head.names.map(() => new Float32Array(L.w * L.h));
      L.names = head.names.slice();
    }
    const src = new Float32Array(buf, off, E * w * h);
    for (let p = 0; p < E; p++) {
      for (let j = 0; j < h; j++) {
        const s = (p * h + j) * w;
        L.el[p].set(src.subarray(s, s + w), (ry + j) * L.w + rx);
      }
    }
  } else if (head.topic === "trust") {
    if (!L.trust) L.trust = new Float32Array(L.w * L.h);
    const src = new Float32Array(buf, off, w * h);
    for (let j = 0; j < h; j++) L.trust.set(src.subarray(j * w, j * w + w), (ry + j) * L.w + rx);
  }
  L.version++;
  const box = [rx, ry, rx + w, ry + h];
  const marks = head.topic === "trust" ? ["mask_rgb", "mask_elements"] : head.topic === "elements"
    ? ["elements"] : [];
  if (head.domain && head.topic !== "trust") marks.push(`mask_${head.topic}`);
  for (const k of marks) L.dirty[k] = union(L.dirty[k], box);
  return true;
}

function union(a, b) {
  return a ? [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])] : b;
}

function offscreen(L, key) {
  if (!L[key]) {
    L[key] = document.createElement("canvas");
    L[key].width = L.w;
    L[key].height = L.h;
  }
  return L[key];
}

// The selected element of a layer through the colour scale; grey below 3 sigma if known.
// Only what changed is rendered again, at the scale in use; the whole layer when the
// plane changes, or when the wanted scale moved by over 2 % (at most twice a second).
// Returns [canvas, [lo, hi] in use] (the colour bar shows that scale).
function elementCanvas(L, valueIdx, sigmaIdx, lo, hi) {
  if (!L.el || valueIdx >= L.el.length) return null;
  const canvas = offscreen(L, "elCanvas"), u = L.elUsed, now = Date.now();
  const moved = u && Math.abs(u.lo - lo) + Math.abs(u.hi - hi) > 0.02 * (u.hi - u.lo || 1);
  if (!u || u.valueIdx !== valueIdx || u.sigmaIdx !== sigmaIdx || (moved && now - L.elFullAt > 500)) {
    L.elUsed = { valueIdx, sigmaIdx, lo, hi };
    L.elFullAt = now;
    paintElement(L, canvas, [0, 0, L.w, L.h]);
    L.dirty.elements = null;
  } else {
    if (L.dirty.elements) paintElement(L, canvas, L.dirty.elements);
    L.dirty.elements = null;
    if (moved) S.dirty = true;  // the new scale is due in a moment: draw again then
  }
  return [canvas, [L.elUsed.lo, L.elUsed.hi]];
}

function paintElement(L, canvas, box) {
  const { valueIdx, sigmaIdx, lo, hi } = L.elUsed, [x0, y0, x1, y1] = box;
  const plane = L.el[valueIdx], sigma = sigmaIdx >= 0 ? L.el[sigmaIdx] : null;
  const img = new ImageData(x1 - x0, y1 - y0), d = img.data, span = hi > lo ? hi - lo : 1;
  for (let y = y0, t = 0; y < y1; y++) {
    for (let x = x0, i = y * L.w + x0; x < x1; x++, i++, t += 4) {
      const v = Math.max(0, plane[i]);  // negatives are shown as zero
      // below the detection limit; `<=` so a zero with sigma 0 (PyMca's maps) is too
      const rgb = sigma && plane[i] <= 3 * sigma[i] ? GREY
        : LUT[Math.max(0, Math.min(255, Math.floor(((v - lo) / span) * 255)))];
      d[t] = rgb[0]; d[t + 1] = rgb[1]; d[t + 2] = rgb[2]; d[t + 3] = 255;
    }
  }
  canvas.getContext("2d").putImageData(img, x0, y0);
}

// Unfamiliar paint (trust score at or above `threshold`) as a red veil, and pixels outside
// the training domain of the model behind `topic` in orange; the rest transparent. Only
// what changed is painted again, unless the threshold or the topic did.
function maskCanvas(L, threshold, topic) {
  const domain = L.domain[topic];
  if (!domain && (!L.trust || threshold === null)) return null;
  const canvas = offscreen(L, `mask_${topic}`), key = `${threshold}`;
  const used = L[`mask_${topic}Key`];
  const dirty = L.dirty[`mask_${topic}`];
  if (used !== key) {
    L[`mask_${topic}Key`] = key;
    paintMask(L, canvas, threshold, domain, [0, 0, L.w, L.h]);
  } else if (dirty) {
    paintMask(L, canvas, threshold, domain, dirty);
  }
  L.dirty[`mask_${topic}`] = null;
  return canvas;
}

function paintMask(L, canvas, threshold, domain, box) {
  const [x0, y0, x1, y1] = box, img = new ImageData(x1 - x0, y1 - y0), d = img.data;
  for (let y = y0, t = 0; y < y1; y++) {
    for (let x = x0, i = y * L.w + x0; x < x1; x++, i++, t += 4) {
      if (L.trust && threshold !== null && L.trust[i] >= threshold && L.trust[i] > 0) {
        d[t] = 255; d[t + 1] = 0; d[t + 2] = 40; d[t + 3] = 150;
      } else if (domain && domain[i]) {
        d[t] = 255; d[t + 1] = 150; d[t + 2] = 0; d[t + 3] = 150;
      }
    }
  }
  canvas.getContext("2d").putImageData(img, x0, y0);
}

// Percentiles (0..1) of the positive values of a plane, from at most ~40,000 samples.
function percentiles(plane, qs) {
  const step = Math.max(1, Math.floor(plane.length / 40000)), vals = [];
  for (let i = 0; i < plane.length; i += step) if (plane[i] > 0) vals.push(plane[i]);
  if (!vals.length) return qs.map(() => 0);
  vals.sort((a, b) => a - b);
  return qs.map((q) => vals[Math.min(vals.length - 1, Math.floor(q * (vals.length - 1)))]);
}

// Screen rectangle of a layer in a view (layer pixels are 2**level canvas pixels).
function blit(ctx, img, L, v) {
  const f = 1 << L.level;
  ctx.drawImage(img, (L.x * f - v.ox) * v.s, (L.y * f - v.oy) * v.sy,
    L.w * f * v.s, L.h * f * v.sy);
}

function drawView(canvas, layers, pick, overlay, v, W, H, marked) {
  const ctx = canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#222";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!v || !layers.length) return;
  ctx.imageSmoothingEnabled = false;
  ctx.save();
  ctx.beginPath();
  ctx.rect(-v.ox * v.s, -v.oy * v.sy, W * v.s, H * v.sy);
  ctx.clip();
  for (const L of layers) {
    const img = pick(L);
    if (img) blit(ctx, img, L, v);
  }
  if (overlay) {
    for (const L of layers) {
      const img = overlay(L);
      if (img) blit(ctx, img, L, v);
    }
  }
  ctx.restore();
  if (marked) {  // the pixel whose spectrum is shown
    ctx.strokeStyle = "#ff3b30";
    ctx.lineWidth = 2;
    const w = Math.max(6, v.s), h = Math.max(6, v.sy);
    ctx.strokeRect((marked.x + 0.5 - v.ox) * v.s - w / 2, (marked.y + 0.5 - v.oy) * v.sy - h / 2, w, h);
  }
}

function niceTicks(lo, hi, n) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(t);
  return out;
}

function fmtValue(v) {
  const a = Math.abs(v);
  if (a >= 1e4) return `${(v / 1000).toFixed(0)}k`;
  if (a >= 1000) return `${(v / 1000).toFixed(1)}k`;
  if (a >= 10) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v === 0 ? "0" : v.toPrecision(2);
}

function drawColorbar(canvas, lo, hi, label) {
  const ctx = canvas.getContext("2d"), H = canvas.height, top = 24, bottom = H - 10;
  ctx.clearRect(0, 0, canvas.width, H);
  ctx.fillStyle = "#1d1d1f";
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillText(label, 0, 12);
  for (let y = top; y <= bottom; y++) {
    const c = LUT[Math.round(((bottom - y) / (bottom - top)) * 255)];
    ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
    ctx.fillRect(0, y, 16, 1);
  }
  ctx.fillStyle = "#1d1d1f";
  const span = hi > lo ? hi - lo : 1;
  for (const t of niceTicks(lo, hi, 5)) {
    const y = bottom - ((t - lo) / span) * (bottom - top);
    ctx.fillRect(16, Math.round(y), 4, 1);
    ctx.fillText(fmtValue(t), 23, Math.min(bottom, Math.max(top + 8, y + 4)));
  }
}
