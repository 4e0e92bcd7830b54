"use strict";
// Scan progress, rates, rejections and refusals in words (from the daemon's `status`).

const REASON_WORDS = {
  too_large: "message too large",
  malformed: "unreadable message",
  unsupported_version: "protocol version not supported",
  unknown_type: "unknown kind of message",
  missing_field: "a required field was missing",
  bad_type: "a field had the wrong type",
  bad_value: "a value was out of range or not a number",
  bad_dtype: "an array had the wrong data type",
  bad_shape: "an array's size disagreed with the scan",
  bad_index: "a sparse spectrum's channel indices were invalid",
  out_of_range: "pixel outside the scan area",
  unknown_scan: "pixels for a scan that is not open",
  refused_scan: "pixels of a refused scan",
  scan_refused: "scan refused",
  multipart: "message in several parts",
  unexpected_type: "message sent to the wrong channel",
  unknown_command: "unknown command",
  internal_error: "the daemon failed on a message (it keeps running)",
  record_error: "could not write the recording (check the disk)",
  inference_error: "the models failed on some pixels (they are recorded)",
  other: "other problems",
};
const END_WORDS = {
  success: "completed", abort: "stopped by the operator", fail: "stopped by the instrument",
};

function fmtCount(n) {
  return Number(n || 0).toLocaleString("en-US");
}

function fmtDuration(s) {
  if (!isFinite(s) || s < 0) return "–";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${sec} s` : `${sec} s`;
}

function showStatus(st) {
  const c = st.counters || {}, r = st.rates || {}, d = st.detail || {};
  // how it ended is only in `detail` (for people): shown when there, never needed
  const end = d.scan && d.scan.scan_id === st.scan_id ? d.scan.end_status : "";
  let title = "No scan yet";
  if (st.refused) title = st.view_scan ? `Showing “${st.view_scan}”, the last scan taken` : title;
  else if (st.state === "scanning") title = `Scanning “${st.scan_id}”`;
  else if (st.scan_id) title = `Scan “${st.scan_id}” ended` + (end ? `: ${END_WORDS[end] || end}` : "");
  $("scan-title").textContent = title;
  if (!st.refused) showProgress(st, c, r);
  showAxis(!st.refused && d.scan && d.scan.scan_id === st.scan_id ? d.scan.energy_axis : null);
  const errors = Object.entries(st.errors || {}).filter(([, n]) => n > 0);
  $("rejections").textContent = errors.length
    ? "Rejected: " + errors.map(([k, n]) => `${fmtCount(n)} × ${REASON_WORDS[k] || k}`).join("; ")
    : "Nothing rejected.";

  const box = $("refusal");  // typed (SPEC 4.5, 1.1): every status says so until the next scan
  box.hidden = !st.refused;
  box.textContent = st.refused
    ? `Scan “${st.scan_id}” was refused and not recorded: ${st.refused}` : "";
}

// progress, rate, time left and this scan's counters (absent while a refusal is shown)
function showProgress(st, c, r) {
  const total = (c.width || 0) * (c.height || 0), filled = c.filled || 0;
  const frac = total ? Math.min(1, filled / total) : 0;
  $("progress-fill").style.width = `${(100 * frac).toFixed(2)}%`;
  const rate = r.spectra_s || 0;
  const parts = [`${fmtCount(filled)} of ${fmtCount(total)} pixels (${(100 * frac).toFixed(1)} %)`];
  if (st.state === "scanning") {
    parts.push(`${fmtCount(Math.round(rate))} pixels/s`);
    parts.push(`about ${rate > 0 ? fmtDuration((total - filled) / rate) : "–"} left`);
  }
  if (c.scan_pixels_accepted !== undefined) {  // this scan's own counters (SPEC 4.5, 1.1)
    parts.push(`${fmtCount(c.scan_pixels_accepted)} accepted, ${fmtCount(c.scan_pixels_recorded)} recorded`);
    if (c.scan_pixels_refused) parts.push(`${fmtCount(c.scan_pixels_refused)} refused`);
    if (c.scan_pixels_not_inferred) parts.push(`${fmtCount(c.scan_pixels_not_inferred)} recorded but not inferred`);
  } else {
    parts.push(`${fmtCount(c.accepted)} accepted`);
  }
  const ood = Object.entries(st.out_of_domain || {}).filter(([, f]) => f > 0);
  if (ood.length) {
    parts.push("outside the training domain: " + ood.map(([t, f]) => `${t} ${(100 * f).toFixed(1)} %`).join(", "));
  }
  $("progress-text").textContent = parts.join(" · ");

  const foreign = st.foreign || [];
  $("foreign").hidden = !foreign.length;
  $("foreign").textContent = foreign.length
    ? `The ${foreign.join(", ")} model${foreign.length > 1 ? "s were" : " was"} not trained for this `
      + "scan's instrument: treat what it shows with caution."
    : "";
}

// the energy axis the element maps read the stream on (proto/energy_axis.py, BUNDLE.md)
function showAxis(a) {
  const at = a && a.shift_ev ? a.shift_ev.map((d, i) =>
    `${d >= 0 ? "+" : ""}${d.toFixed(1)} eV at ${a.anchors_kev[i].toFixed(2)} keV`).join(", ") : "";
  const words = !a ? "" : {
    summing: `Checking the energy calibration on the first pixels (${fmtCount(a.counts)} of `
      + `${fmtCount(a.needs_counts)} counts): their element maps follow.`,
    locked: `Energy calibration corrected: the spectra's lines sit ${at} off the scanner's `
      + "stated calibration; the element maps read them where they are.",
    off_range: `The spectra's lines sit more than 60 eV off the scanner's stated energy `
      + `calibration (${at}): treat the element maps with caution and check the calibration.`,
    too_few_counts: "Energy calibration not checked (too few counts): the stated one is used.",
    check_failed: `Energy calibration not checked (${a.error || "the check failed"}): `
      + "the stated one is used.",
  }[a.state] || "";
  const el = $("axis");
  el.hidden = !words;
  el.textContent = words;
  el.className = a && a.state === "off_range" ? "warning" : "note";
}

function showLink(m) {
  const el = $("link");
  if (m.ok === false) {
    el.textContent = `daemon not reachable (${m.text}); retrying`;
    el.className = "link down";
  } else {
    el.textContent = m.ok ? "connected to the daemon" : m.text;
    el.className = "link";
  }
}
