// Drawing on canvases: the OLED (the device renderer's PNG, tinted), the impact's waveform,
// spectrogram and descriptor curves against the model's anchors.

const OLED_RGB = [143, 220, 255];

/** Make a canvas's backing store match its CSS size (crisp lines on any screen). */
function fit(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, w: canvas.clientWidth, h: canvas.clientHeight };
}

/** Draw the OLED: `png` (ArrayBuffer, 128×64, lit = white) onto the 128×64 canvas in the OLED's colour. */
export async function drawOled(canvas, png) {
  const bitmap = await createImageBitmap(new Blob([png], { type: "image/png" }));
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const d = img.data;
  for (let i = 0; i < d.length; i += 4) {
    const lit = d[i] > 127;
    d[i] = lit ? OLED_RGB[0] : 2;
    d[i + 1] = lit ? OLED_RGB[1] : 4;
    d[i + 2] = lit ? OLED_RGB[2] : 8;
    d[i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  bitmap.close();
}

function grid(ctx, w, h, lines) {
  ctx.strokeStyle = "#1b1e23";
  ctx.lineWidth = 1;
  for (let i = 1; i < lines; i++) {
    const x = Math.round((w * i) / lines) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke();
  }
}

function label(ctx, text, x, y, align = "left", colour = "#6d737d") {
  ctx.fillStyle = colour;
  ctx.font = "11px ui-monospace, 'DejaVu Sans Mono', monospace";
  ctx.textAlign = align;
  ctx.fillText(text, x, y);
}

/** The waveform envelope: `wave` = {min: [], max: []}, `duration` seconds. */
export function drawWave(canvas, impact) {
  const { ctx, w, h } = fit(canvas);
  ctx.clearRect(0, 0, w, h);
  grid(ctx, w, h, 10);
  const mid = h / 2;
  ctx.strokeStyle = "#262a31";
  ctx.beginPath(); ctx.moveTo(0, mid + 0.5); ctx.lineTo(w, mid + 0.5); ctx.stroke();
  if (!impact) return;
  const { min, max } = impact.wave;
  const n = max.length;
  if (!n) return;
  const peak = Math.max(0.05, impact.peak);
  const scale = (h / 2 - 6) / peak;
  ctx.fillStyle = "rgba(95, 211, 255, 0.85)";
  ctx.beginPath();
  for (let i = 0; i < n; i++) ctx.lineTo((i / (n - 1 || 1)) * w, mid - max[i] * scale);
  for (let i = n - 1; i >= 0; i--) ctx.lineTo((i / (n - 1 || 1)) * w, mid - min[i] * scale);
  ctx.closePath();
  ctx.fill();
  label(ctx, `${impact.duration.toFixed(2)} s`, w - 6, h - 6, "right");
  label(ctx, `peak ${impact.peak.toFixed(2)}`, 6, 14);
}

/** Colour map for the spectrogram (dark blue → magenta → amber → white), 256 entries. */
const COLOURS = (() => {
  const stops = [[0, [8, 9, 11]], [0.3, [40, 20, 90]], [0.55, [170, 40, 120]], [0.78, [255, 150, 50]], [1, [255, 250, 220]]];
  const out = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let k = 0;
    while (k < stops.length - 2 && t > stops[k + 1][0]) k++;
    const [t0, c0] = stops[k];
    const [t1, c1] = stops[k + 1];
    const u = (t - t0) / (t1 - t0);
    for (let c = 0; c < 3; c++) out[i * 3 + c] = c0[c] + (c1[c] - c0[c]) * u;
  }
  return out;
})();

/** The spectrogram: `spec` = {rows, columns, fmin, fmax, data: base64 uint8 row-major, row 0 lowest}. */
export function drawSpectrogram(canvas, impact) {
  const { ctx, w, h } = fit(canvas);
  ctx.clearRect(0, 0, w, h);
  if (!impact) return;
  const { rows, columns, fmin, fmax, data } = impact.spec;
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const off = new OffscreenCanvas(columns, rows);
  const octx = off.getContext("2d");
  const img = octx.createImageData(columns, rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) {
      const v = bytes[r * columns + c];
      const o = ((rows - 1 - r) * columns + c) * 4;
      img.data[o] = COLOURS[v * 3];
      img.data[o + 1] = COLOURS[v * 3 + 1];
      img.data[o + 2] = COLOURS[v * 3 + 2];
      img.data[o + 3] = 255;
    }
  }
  octx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, w, h);
  const logSpan = Math.log(fmax / fmin);
  for (const f of [100, 1000, 10000]) {
    if (f <= fmin || f >= fmax) continue;
    const y = h - (Math.log(f / fmin) / logSpan) * h;
    ctx.strokeStyle = "rgba(255,255,255,0.15)";
    ctx.beginPath(); ctx.moveTo(0, y + 0.5); ctx.lineTo(w, y + 0.5); ctx.stroke();
    label(ctx, f >= 1000 ? `${f / 1000} kHz` : `${f} Hz`, 6, y - 3, "left", "rgba(255,255,255,0.6)");
  }
}

const LOG_SCALE = new Set(["rolloff", "bandwidth", "centroid", "f0"]);

function fmt(v, unit) {
  if (unit === "Hz") return v >= 1000 ? `${(v / 1000).toFixed(1)} kHz` : `${v.toFixed(0)} Hz`;
  if (Math.abs(v) >= 100) return v.toFixed(0);
  return v.toPrecision(2);
}

/**
 * One descriptor's curves: the anchors (grey), requested (dashed amber) and measured (cyan).
 * @param {HTMLCanvasElement} canvas
 * @param {number} column descriptor column 0..6
 * @param {{name: string, label: string, unit: string}} info
 * @param {object|null} impact the `impact` message
 * @param {object|null} anchors the `anchors` message
 */
export function drawCurves(canvas, column, info, impact, anchors) {
  const { ctx, w, h } = fit(canvas);
  ctx.clearRect(0, 0, w, h);
  grid(ctx, w, h, 10);
  const series = [];
  if (anchors) {
    for (const name of anchors.names) series.push({ rows: anchors.curves[name], hop: anchors.hop_s, kind: "anchor" });
  }
  if (impact && impact.curves.requested) series.push({ rows: impact.curves.requested, hop: impact.curves.requested_hop_s, kind: "req" });
  if (impact && impact.curves.measured) series.push({ rows: impact.curves.measured, hop: impact.curves.measured_hop_s, kind: "meas" });
  if (!series.length) return;
  const log = LOG_SCALE.has(info.name);
  let lo = Infinity, hi = -Infinity, tmax = 0;
  for (const s of series) {
    tmax = Math.max(tmax, s.rows.length * s.hop);
    for (const row of s.rows) {
      const v = row[column];
      if (log && v <= 0) continue;
      lo = Math.min(lo, v); hi = Math.max(hi, v);
    }
  }
  if (!isFinite(lo)) { lo = log ? 1 : 0; hi = log ? 10 : 1; }
  if (log) { lo = Math.max(lo, 10); hi = Math.max(hi, lo * 1.5); } else if (hi - lo < 1e-9) { hi = lo + 1; }
  const pad = 10;
  const y = (v) => {
    const t = log ? Math.log(Math.max(v, lo) / lo) / Math.log(hi / lo) : (v - lo) / (hi - lo);
    return h - pad - t * (h - 2 * pad);
  };
  const x = (t) => (t / (tmax || 1)) * w;
  const styles = {
    anchor: { colour: "rgba(120,128,140,0.55)", width: 1, dash: [] },
    req: { colour: "#ffb347", width: 2, dash: [6, 4] },
    meas: { colour: "#5fd3ff", width: 2, dash: [] },
  };
  for (const s of series) {
    const st = styles[s.kind];
    ctx.strokeStyle = st.colour;
    ctx.lineWidth = st.width;
    ctx.setLineDash(st.dash);
    ctx.beginPath();
    s.rows.forEach((row, i) => {
      const px = x(i * s.hop), py = y(row[column]);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
  }
  ctx.setLineDash([]);
  label(ctx, `${info.label} · ${info.name}${info.unit ? ` (${info.unit})` : ""}${log ? " · log" : ""}`, 6, 14, "left", "#aab0b9");
  label(ctx, fmt(hi, info.unit), w - 6, 14, "right");
  label(ctx, fmt(lo, info.unit), w - 6, h - 6, "right");
  label(ctx, `${tmax.toFixed(2)} s`, w / 2, h - 6, "center");
}
