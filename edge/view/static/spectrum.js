"use strict";
// One pixel's recorded spectrum (from `pixel_request`), with the mapped elements' lines.

// Main emission lines, keV (K-alpha1/K-beta1, L-alpha1/L-beta1; X-ray data booklet values).
const LINES = {
  S: [["Kα", 2.308]], Cl: [["Kα", 2.622]], Ar: [["Kα", 2.957]],
  K: [["Kα", 3.314], ["Kβ", 3.590]], Ca: [["Kα", 3.692], ["Kβ", 4.013]],
  Ti: [["Kα", 4.511], ["Kβ", 4.932]], Cr: [["Kα", 5.415], ["Kβ", 5.947]],
  Mn: [["Kα", 5.899], ["Kβ", 6.490]], Fe: [["Kα", 6.404], ["Kβ", 7.058]],
  Co: [["Kα", 6.930], ["Kβ", 7.649]], Ni: [["Kα", 7.478], ["Kβ", 8.265]],
  Cu: [["Kα", 8.048], ["Kβ", 8.905]], Zn: [["Kα", 8.639], ["Kβ", 9.572]],
  As: [["Kα", 10.544], ["Kβ", 11.726]], Se: [["Kα", 11.222], ["Kβ", 12.496]],
  Sr: [["Kα", 14.165], ["Kβ", 15.836]], Zr: [["Kα", 15.775]], Mo: [["Kα", 17.479]],
  Ag: [["Lα", 2.984], ["Kα", 22.163]], Cd: [["Lα", 3.134]], Sn: [["Lα", 3.444], ["Kα", 25.271]],
  Sb: [["Lα", 3.605]], Ba: [["Lα", 4.466], ["Lβ", 4.828]],
  Au: [["Lα", 9.713], ["Lβ", 11.442]], Hg: [["Lα", 9.989], ["Lβ", 11.823]],
  Pb: [["Lα", 10.551], ["Lβ", 12.614]], Bi: [["Lα", 10.839], ["Lβ", 13.024]],
};
const LINE_COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
  "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];

let lastSpectrum = null;

function drawSpectrum(m, elementNames) {
  lastSpectrum = { m, elementNames };
  const canvas = $("spectrum"), ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, left = 56, right = 12, top = 22, bottom = 30;
  ctx.clearRect(0, 0, W, H);
  if (m.error) {
    const words = {
      not_recorded: "not recorded yet", out_of_range: "outside the scan",
      unknown_scan: "belongs to a scan the daemon no longer serves", no_reply: "the daemon did not answer",
    };
    $("spectrum-title").textContent = `Pixel (${m.x}, ${m.y}): ${words[m.error] || m.error}`;
    $("spectrum-lines").textContent = "";
    return;
  }
  const counts = m.counts, n = counts.length, total = counts.reduce((a, b) => a + b, 0);
  $("spectrum-title").textContent = `Pixel (${m.x}, ${m.y}) · live ${m.live_time_s.toFixed(4)} s · `
    + `real ${m.real_time_s.toFixed(4)} s · ${fmtCount(total)} counts in ${n} channels`;
  const log = $("spectrum-log").checked, f = log ? (v) => Math.log10(1 + v) : (v) => v;
  const e0 = Math.max(0, m.offset_kev), e1 = m.offset_kev + m.gain_kev * (n - 1);
  const pw = W - left - right, ph = H - top - bottom;
  const xOf = (e) => left + ((e - e0) / (e1 - e0 || 1)) * pw;
  let ymax = 0;
  for (let i = 0; i < n; i++) ymax = Math.max(ymax, f(counts[i]));
  ymax = ymax || 1;
  // the spectrum: one bar per channel, at least a screen pixel wide (peaks never vanish)
  ctx.fillStyle = "#4a6fa5";
  const bw = Math.max(1, (m.gain_kev / (e1 - e0 || 1)) * pw);
  for (let i = 0; i < n; i++) {
    const e = m.offset_kev + m.gain_kev * i, h = (f(counts[i]) / ymax) * ph;
    if (e < e0 || h <= 0) continue;
    ctx.fillRect(xOf(e) - bw / 2, top + ph - h, bw, h);
  }
  // axes
  ctx.strokeStyle = "#333";
  ctx.fillStyle = "#333";
  ctx.font = "11px system-ui, sans-serif";
  ctx.beginPath();
  ctx.moveTo(left, top);
  ctx.lineTo(left, top + ph);
  ctx.lineTo(left + pw, top + ph);
  ctx.stroke();
  for (const t of niceTicks(e0, e1, 10)) {
    const x = xOf(t);
    ctx.fillRect(x, top + ph, 1, 4);
    ctx.fillText(`${+t.toFixed(1)}`, x - 6, top + ph + 15);
  }
  ctx.fillText("keV", left + pw - 20, top + ph + 27);
  for (const t of niceTicks(0, ymax, 4)) {
    const y = top + ph - (t / ymax) * ph;
    ctx.fillRect(left - 4, y, 4, 1);
    ctx.fillText(log ? `1e${+t.toFixed(1)}` : fmtValue(t), 4, y + 4);
  }
  ctx.fillText(log ? "counts (log)" : "counts", 4, 12);
  // the mapped elements' lines
  const marked = [];
  elementNames.forEach((name, k) => {
    const colour = LINE_COLOURS[k % LINE_COLOURS.length];
    for (const [line, e] of LINES[name] || []) {
      if (e < e0 || e > e1) continue;
      const x = Math.round(xOf(e)) + 0.5;
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      ctx.setLineDash(line.endsWith("α") ? [] : [3, 3]);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + ph);
      ctx.stroke();
      if (line.endsWith("α")) ctx.fillText(`${name} ${line}`, x + 2, top + 10 + 11 * (k % 3));
      marked.push(`${name} ${line} ${e.toFixed(2)} keV`);
    }
  });
  ctx.setLineDash([]);
  $("spectrum-lines").textContent = marked.length ? `Lines marked: ${marked.join(", ")}` : "";
}
