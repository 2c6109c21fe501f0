// The faceplate page: connects to the panel server, draws what it sends, sends what the hands do.
// Exposes `window.neurorack` (state and counters) for tests and curious players.

import { Encoder, Knob } from "./controls.js";
import { drawCurves, drawOled, drawSpectrogram, drawWave } from "./draw.js";
import { Link } from "./link.js";
import { Notes } from "./notes.js";
import { Sound } from "./sound.js";

const $ = (id) => document.getElementById(id);

const state = {
  hello: null,
  status: null,
  impact: null,
  anchors: null,
  pcmId: 0,
  screens: 0,
  errors: [],
  column: 5, // brightness (centroid) shown first
  soundTouched: false,
};
const sound = new Sound();
const link = new Link({ onMessage, onFrame, onState });
const notes = new Notes(document.getElementById("notes"), (msg) => link.send(msg));
window.neurorack = { state, sound, link, notes };

// ---- controls -------------------------------------------------------------------------------------
const encoder = new Encoder($("encoder"), (ev) => link.send({ type: "encoder", ...ev }));
$("press").addEventListener("click", () => link.send({ type: "encoder", action: "press" }));
$("back").addEventListener("click", () => link.send({ type: "encoder", action: "long_press" }));

const knobs = [1, 2, 3, 4].map((i) => new Knob($("knobs"), i, (index, volts) => link.send({ type: "cv", index, volts })));
for (const k of knobs) {
  k.select.addEventListener("change", () => link.send({ type: "assign", cv: k.index, target: k.select.value }));
}

const gateDown = [false, false, false];
function gate(index, high) {
  if (gateDown[index] === high) return;
  gateDown[index] = high;
  $(`gate${index}`).classList.toggle("down", high);
  if (high) sound.unlock();
  if (high && index === 1) sound.play();
  link.send({ type: "gate", index, high });
}
for (const index of [1, 2]) {
  const el = $(`gate${index}`);
  el.addEventListener("pointerdown", (e) => { if (e.button === 0) { el.setPointerCapture(e.pointerId); gate(index, true); } });
  el.addEventListener("pointerup", () => gate(index, false));
  el.addEventListener("pointercancel", () => gate(index, false));
  el.addEventListener("keydown", (e) => { if ((e.key === " " || e.key === "Enter") && !e.repeat) { e.preventDefault(); gate(index, true); } });
  el.addEventListener("keyup", (e) => { if (e.key === " " || e.key === "Enter") gate(index, false); });
}

const GATE_KEYS = { z: 1, "1": 1, x: 2, "2": 2 };
function typing(target) {
  return target instanceof HTMLSelectElement || target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement;
}
window.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
  const g = GATE_KEYS[e.key.toLowerCase()];
  if (g) {
    e.preventDefault();
    if (!e.repeat) gate(g, true);
    return;
  }
  if (state.status && state.status.notes && notes.key(e, true)) { e.preventDefault(); return; }
  // arrows, Enter, Backspace go to the encoder unless another control has the focus
  const t = e.target;
  if ((t === document.body || t === document.documentElement) && encoder.key(e)) e.preventDefault();
});
window.addEventListener("keyup", (e) => {
  const g = GATE_KEYS[e.key.toLowerCase()];
  if (g) gate(g, false);
  else if (state.status && state.status.notes) notes.key(e, false);
});
window.addEventListener("blur", () => { gate(1, false); gate(2, false); notes.allUp(); });
window.addEventListener("pointerdown", () => sound.unlock(), { capture: true });

$("model").addEventListener("change", (e) => link.send({ type: "model", name: e.target.value }));
$("reload").addEventListener("click", () => link.send({ type: "reload" }));
$("record").addEventListener("click", () => {
  const on = !(state.status && state.status.recording);
  link.send({ type: "record", on });
});
$("sound").addEventListener("change", (e) => {
  state.soundTouched = true;
  sound.enabled = e.target.checked;
  if (sound.enabled) sound.unlock();
});

// ---- messages -------------------------------------------------------------------------------------
function onState(open) {
  const pill = $("link");
  pill.textContent = open ? "connected" : "reconnecting…";
  pill.classList.toggle("ok", open);
}

let toastTimer = 0;
function toast(text, kind = "error") {
  const el = $("toast");
  el.textContent = text;
  el.className = `toast show ${kind === "error" ? "" : "info"}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = "toast"; }, 3500);
}

function onMessage(msg) {
  switch (msg.type) {
    case "hello": return onHello(msg);
    case "status": return onStatus(msg);
    case "impact":
      state.impact = msg;
      drawWave($("wave"), msg);
      drawSpectrogram($("spec"), msg);
      $("wave-info").textContent = `${msg.duration.toFixed(2)} s · ${msg.sample_rate} Hz`;
      return redrawCurves();
    case "anchors":
      state.anchors = msg;
      return redrawCurves();
    case "error":
      state.errors.push(msg.error);
      if (state.errors.length > 50) state.errors.shift();
      return toast(msg.error);
    case "recording": return toast(`recording ${msg.file}`, "info");
    case "recorded": return toast(msg.file ? `saved ${msg.file}` : "recording stopped", "info");
    default: return undefined;
  }
}

function onFrame(frame) {
  if (frame.tag === "SCRN") {
    state.screens += 1;
    drawOled($("oled"), frame.payload);
  } else if (frame.tag === "PCM1") {
    state.pcmId = frame.header.id;
    sound.load(new Float32Array(frame.payload), frame.header.sample_rate);
  }
}

function onHello(msg) {
  state.hello = msg;
  for (const k of knobs) {
    k.select.replaceChildren(...msg.targets.map((t) => new Option(t.label, t.name)));
  }
  const tabs = $("tabs");
  tabs.replaceChildren(...msg.descriptors.map((d, i) => {
    const b = document.createElement("button");
    b.textContent = d.label;
    b.title = `${d.name}${d.unit ? ` (${d.unit})` : ""}`;
    b.setAttribute("role", "tab");
    b.dataset.column = String(i);
    b.addEventListener("click", () => { state.column = i; redrawCurves(); });
    return b;
  }));
  $("record").disabled = !msg.can_record;
  redrawCurves();
}

function modelLabel(spec) {
  const base = spec.split(/[\\/]/).pop();
  return base.endsWith(".safetensors") ? base.slice(0, -12) : base;
}

function onStatus(s) {
  const first = state.status === null;
  state.status = s;
  if (first && !state.soundTouched) {
    sound.enabled = s.backend === "null"; // the panel is the instrument's only voice
    $("sound").checked = sound.enabled;
  }
  const lo = s.cv_range >= 10 ? 0 : -5;
  const hi = s.cv_range >= 10 ? 10 : 5;
  knobs.forEach((k, i) => {
    k.setRange(lo, hi);
    k.live(s.cvs[i] ?? 0);
    const target = s.assignments[String(i + 1)];
    if (target && k.select.value !== target && document.activeElement !== k.select) k.select.value = target;
  });
  for (const g of [1, 2]) $(`gate${g}-led`).classList.toggle("on", Boolean(s.gates[g - 1]));
  const [r, g, b] = s.led;
  $("led").style.setProperty("--led", `rgb(${r}, ${g}, ${b})`);

  const select = $("model");
  const names = s.models.join("\n");
  if (select.dataset.names !== names) {
    select.dataset.names = names;
    select.replaceChildren(...s.models.map((m) => new Option(modelLabel(m), m)));
  }
  const current = s.models.find((m) => m === s.model || modelLabel(m) === s.model);
  if (current && select.value !== current && document.activeElement !== select) select.value = current;
  select.dataset.current = s.model;

  notes.update(s.notes);

  const rec = $("record");
  rec.classList.toggle("on", Boolean(s.recording));
  $("record-label").textContent = s.recording ? `STOP ${s.recording}` : "REC";

  const load = (s.callback_load * 100).toFixed(1);
  $("status").textContent =
    `${s.model} · ${s.backend}${s.running ? "" : " (stopped)"} ${(s.sample_rate / 1000).toFixed(1)} kHz/${s.period}` +
    ` · voices ${s.voices}/${s.max_voices} · hits ${s.hits} · render ${s.render_ms.toFixed(1)} ms` +
    ` · callback ${load} % · xruns ${s.xruns}${s.pending ? " · rendering…" : ""}${s.message ? ` · ${s.message}` : ""}`;
}

function redrawCurves() {
  const tabs = $("tabs").children;
  for (const t of tabs) t.setAttribute("aria-selected", String(Number(t.dataset.column) === state.column));
  const info = state.hello ? state.hello.descriptors[state.column] : { name: "centroid", label: "brightness", unit: "Hz" };
  drawCurves($("curves"), state.column, info, state.impact, state.anchors);
}

window.addEventListener("resize", () => {
  if (state.impact) { drawWave($("wave"), state.impact); drawSpectrogram($("spec"), state.impact); }
  redrawCurves();
});

drawWave($("wave"), null);
link.connect();
