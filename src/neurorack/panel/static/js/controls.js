// The faceplate's hand controls: the encoder (drag, wheel, arrow keys; click = press, hold = long
// press) and the CV knobs (drag, wheel, keys; double-click = centre). Plain DOM + SVG.

const SVG = "http://www.w3.org/2000/svg";
/** Milliseconds the encoder is held for a long press (the hardware's 0.8 s). */
export const LONG_PRESS_MS = 800;
/** Pixels of drag per encoder detent. */
export const DRAG_PX_PER_DETENT = 18;
/** Knob sweep: from -135° to +135° (0° = straight up). */
const SWEEP = 135;

function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function polar(cx, cy, r, deg) {
  const a = (deg - 90) * Math.PI / 180;
  return [cx + r * Math.cos(a), cy + r * Math.sin(a)];
}

function arc(cx, cy, r, from, to) {
  if (Math.abs(to - from) < 0.01) return "";
  const [x0, y0] = polar(cx, cy, r, Math.min(from, to));
  const [x1, y1] = polar(cx, cy, r, Math.max(from, to));
  const large = Math.abs(to - from) > 180 ? 1 : 0;
  return `M ${x0} ${y0} A ${r} ${r} 0 ${large} 1 ${x1} ${y1}`;
}

/**
 * The rotary encoder with push button.
 * @param {HTMLElement} el the encoder element (focusable)
 * @param {(event: {action: string, steps?: number}) => void} emit called for rotate / press / long_press
 */
export class Encoder {
  constructor(el, emit) {
    this.el = el;
    this.emit = emit;
    this.angle = 0;
    this.cap = el.querySelector(".encoder-cap");
    this.wheelAcc = 0;
    el.addEventListener("pointerdown", (e) => this.down(e));
    el.addEventListener("pointermove", (e) => this.move(e));
    el.addEventListener("pointerup", (e) => this.up(e));
    el.addEventListener("pointercancel", () => this.cancel());
    el.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    el.addEventListener("keydown", (e) => { if (this.key(e)) e.preventDefault(); });
  }

  turn(steps) {
    if (!steps) return;
    this.angle += steps * 18;
    this.cap.style.transform = `rotate(${this.angle}deg)`;
    this.emit({ action: "rotate", steps });
  }

  down(e) {
    if (e.button !== 0) return;
    e.preventDefault();
    this.el.focus();
    this.el.setPointerCapture(e.pointerId);
    this.drag = { x: e.clientX, y: e.clientY, acc: 0, turned: false, long: false };
    this.el.classList.add("held", "pressed");
    this.timer = setTimeout(() => {
      if (this.drag && !this.drag.turned) {
        this.drag.long = true;
        this.el.classList.remove("pressed");
        this.emit({ action: "long_press" });
      }
    }, LONG_PRESS_MS);
  }

  move(e) {
    const d = this.drag;
    if (!d) return;
    // up or right turns clockwise
    d.acc += (e.clientX - d.x) - (e.clientY - d.y);
    d.x = e.clientX;
    d.y = e.clientY;
    const steps = Math.trunc(d.acc / DRAG_PX_PER_DETENT);
    if (steps !== 0 && !d.long) {
      d.acc -= steps * DRAG_PX_PER_DETENT;
      d.turned = true;
      this.el.classList.remove("pressed");
      this.turn(steps);
    }
  }

  up(e) {
    const d = this.drag;
    this.cancel();
    if (d && !d.turned && !d.long) this.emit({ action: "press" });
    if (e && this.el.hasPointerCapture(e.pointerId)) this.el.releasePointerCapture(e.pointerId);
  }

  cancel() {
    clearTimeout(this.timer);
    this.drag = null;
    this.el.classList.remove("held", "pressed");
  }

  wheel(e) {
    e.preventDefault();
    // one detent per wheel notch (~100 px in Chromium, 3 lines in Firefox); scrolling down = clockwise
    const unit = e.deltaMode === 1 ? 3 : e.deltaMode === 2 ? 1 : 100;
    this.wheelAcc += e.deltaY / unit;
    const steps = Math.trunc(this.wheelAcc + Math.sign(this.wheelAcc) * 0.25);
    if (steps !== 0) {
      this.wheelAcc = 0;
      this.turn(Math.max(-8, Math.min(8, steps)));
    }
  }

  /** Arrow keys turn (down/right clockwise, as the device's keyboard); Enter/Space press; Backspace/Esc back. */
  key(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return false;
    switch (e.key) {
      case "ArrowDown": case "ArrowRight": this.turn(1); return true;
      case "ArrowUp": case "ArrowLeft": this.turn(-1); return true;
      case "Enter": case " ": if (!e.repeat) this.emit({ action: "press" }); return true;
      case "Backspace": case "Escape": if (!e.repeat) this.emit({ action: "long_press" }); return true;
      default: return false;
    }
  }
}

/**
 * A CV knob: shows the live CV (every source summed, from the engine's status) and sends the panel's value.
 * @param {HTMLElement} parent where to build it
 * @param {number} index CV index 1..4
 * @param {(index: number, volts: number) => void} send called (at most once per frame) with new volts
 */
export class Knob {
  constructor(parent, index, send) {
    this.index = index;
    this.send = send;
    this.min = -5;
    this.max = 5;
    this.value = 0;        // what the knob shows (volts)
    this.local = null;     // the user's value while turning
    this.localUntil = 0;
    this.queued = null;

    const cell = document.createElement("div");
    cell.className = "knob-cell";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = `CV${index}`;
    const knob = document.createElement("div");
    knob.className = "knob";
    knob.id = `cv${index}`;
    knob.tabIndex = 0;
    knob.setAttribute("role", "slider");
    knob.setAttribute("aria-label", `CV ${index} (volts)`);
    const s = svg("svg", { viewBox: "0 0 68 68" }, knob);
    const defs = svg("defs", {}, s);
    const grad = svg("radialGradient", { id: `knob-grad-${index}`, cx: "40%", cy: "30%", r: "75%" }, defs);
    svg("stop", { offset: "0%", "stop-color": "#60656e" }, grad);
    svg("stop", { offset: "100%", "stop-color": "#1f2226" }, grad);
    svg("path", { class: "track", d: arc(34, 34, 30, -SWEEP, SWEEP) }, s);
    this.arc = svg("path", { class: "value", d: "" }, s);
    svg("circle", { class: "body", cx: 34, cy: 34, r: 22, fill: `url(#knob-grad-${index})` }, s);
    this.pointer = svg("line", { class: "pointer", x1: 34, y1: 34, x2: 34, y2: 15 }, s);
    this.dot = svg("circle", { class: "live", cx: 34, cy: 4, r: 2.6 }, s);
    this.out = document.createElement("output");
    this.select = document.createElement("select");
    this.select.className = "assign";
    this.select.dataset.cv = String(index);
    this.select.setAttribute("aria-label", `CV ${index} target`);
    cell.append(name, knob, this.out, this.select);
    parent.appendChild(cell);
    this.el = knob;

    knob.addEventListener("pointerdown", (e) => this.down(e));
    knob.addEventListener("pointermove", (e) => this.move(e));
    knob.addEventListener("pointerup", (e) => this.up(e));
    knob.addEventListener("pointercancel", (e) => this.up(e));
    knob.addEventListener("dblclick", () => this.set(this.centre()));
    knob.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.set(this.shown() - Math.sign(e.deltaY) * (e.shiftKey ? 0.01 : 0.1));
    }, { passive: false });
    knob.addEventListener("keydown", (e) => { if (this.key(e)) e.preventDefault(); });
    this.draw();
  }

  centre() { return this.min < 0 ? 0 : (this.min + this.max) / 2; }
  shown() { return this.local !== null ? this.local : this.value; }

  setRange(min, max) {
    if (min === this.min && max === this.max) return;
    this.min = min;
    this.max = max;
    this.draw();
  }

  /** The user turned the knob to `volts` (clamped); sent on the next animation frame. */
  set(volts) {
    const v = Math.round(Math.min(this.max, Math.max(this.min, volts)) * 1000) / 1000;
    this.local = v;
    this.localUntil = performance.now() + 600;
    if (this.queued === null) {
      requestAnimationFrame(() => {
        const q = this.queued;
        this.queued = null;
        if (q !== null) this.send(this.index, q);
      });
    }
    this.queued = v;
    this.draw();
  }

  /** The engine's CV now (every source summed). */
  live(volts) {
    this.value = volts;
    if (this.local !== null && !this.dragging && performance.now() > this.localUntil) this.local = null;
    this.draw();
  }

  down(e) {
    if (e.button !== 0) return;
    e.preventDefault();
    this.el.focus();
    this.el.setPointerCapture(e.pointerId);
    this.dragging = { y: e.clientY, x: e.clientX, start: this.shown() };
  }

  move(e) {
    const d = this.dragging;
    if (!d) return;
    const px = (d.y - e.clientY) + (e.clientX - d.x); // up or right = more
    const perPx = (this.max - this.min) / (e.shiftKey ? 1600 : 160);
    this.set(d.start + px * perPx);
  }

  up(e) {
    this.dragging = null;
    if (e && this.el.hasPointerCapture(e.pointerId)) this.el.releasePointerCapture(e.pointerId);
  }

  key(e) {
    const fine = e.shiftKey ? 0.01 : 0.1;
    switch (e.key) {
      case "ArrowUp": case "ArrowRight": this.set(this.shown() + fine); return true;
      case "ArrowDown": case "ArrowLeft": this.set(this.shown() - fine); return true;
      case "PageUp": this.set(this.shown() + 1); return true;
      case "PageDown": this.set(this.shown() - 1); return true;
      case "Home": this.set(this.min); return true;
      case "End": this.set(this.max); return true;
      case "Delete": case "0": this.set(this.centre()); return true;
      default: return false;
    }
  }

  angleOf(v) {
    const t = (Math.min(this.max, Math.max(this.min, v)) - this.min) / (this.max - this.min);
    return -SWEEP + 2 * SWEEP * t;
  }

  draw() {
    const shown = this.shown();
    const a = this.angleOf(shown);
    const a0 = this.angleOf(this.centre());
    this.arc.setAttribute("d", arc(34, 34, 30, a0, a));
    const [x, y] = polar(34, 34, 19, a);
    this.pointer.setAttribute("x2", x.toFixed(2));
    this.pointer.setAttribute("y2", y.toFixed(2));
    const [lx, ly] = polar(34, 34, 30, this.angleOf(this.value));
    this.dot.setAttribute("cx", lx.toFixed(2));
    this.dot.setAttribute("cy", ly.toFixed(2));
    this.el.setAttribute("aria-valuenow", shown.toFixed(2));
    this.el.setAttribute("aria-valuemin", String(this.min));
    this.el.setAttribute("aria-valuemax", String(this.max));
    this.out.textContent = `${shown >= 0 ? "+" : ""}${shown.toFixed(2)} V`;
  }
}
