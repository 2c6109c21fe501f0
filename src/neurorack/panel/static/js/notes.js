// The notes mode: an on-screen keyboard (mouse, touch and the computer keyboard, as in a DAW), the note
// model's instrument and a morph between two instruments (CV 1 moves it). Shown only when the engine plays
// a note model (neurorack play --notes MODEL); its status arrives in status.notes.

// DAW layout: the home row plays the white keys from C, the row above the black keys; - and = move an octave.
const KEY_SEMITONES = { a: 0, w: 1, s: 2, e: 3, d: 4, f: 5, t: 6, g: 7, y: 8, h: 9, u: 10, j: 11, k: 12, o: 13, l: 14 };
const BLACK = new Set([1, 3, 6, 8, 10]);
const NAMES = ["C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B"];

export class Notes {
  constructor(root, send) {
    this.root = root;
    this.send = send;
    this.octave = 4; // the lowest key is C of this octave (MIDI 60 for 4)
    this.held = new Map(); // source ("key:a", "ptr:3") -> pitch
    this.names = "";
    this.keys = root.querySelector("#keys");
    this.instrument = root.querySelector("#instrument");
    this.morphA = root.querySelector("#morph-a");
    this.morphB = root.querySelector("#morph-b");
    this.morph = root.querySelector("#morph");
    this.build();
    this.instrument.addEventListener("change", () => this.send({ type: "program", index: Number(this.instrument.value) }));
    this.morph.addEventListener("change", () => this.sendMorph());
    this.morphA.addEventListener("change", () => { if (this.morph.checked) this.sendMorph(); });
    this.morphB.addEventListener("change", () => { if (this.morph.checked) this.sendMorph(); });
    root.querySelector("#octave-down").addEventListener("click", () => this.shift(-1));
    root.querySelector("#octave-up").addEventListener("click", () => this.shift(1));
  }

  get base() { return 12 * (this.octave + 1); }

  build() {
    this.keys.replaceChildren();
    for (let i = 0; i < 25; i += 1) {
      const key = document.createElement("button");
      key.className = `key ${BLACK.has(i % 12) ? "black" : "white"}`;
      key.dataset.offset = String(i);
      key.setAttribute("aria-label", `${NAMES[i % 12]}${this.octave + Math.floor(i / 12)}`);
      key.addEventListener("pointerdown", (e) => {
        if (e.button !== 0) return;
        key.setPointerCapture(e.pointerId);
        this.down(`ptr:${e.pointerId}`, this.base + i);
      });
      const up = (e) => this.up(`ptr:${e.pointerId}`);
      key.addEventListener("pointerup", up);
      key.addEventListener("pointercancel", up);
      this.keys.append(key);
    }
    this.root.querySelector("#octave").textContent = `C${this.octave}`;
  }

  shift(by) {
    this.allUp();
    this.octave = Math.min(8, Math.max(0, this.octave + by));
    this.build();
  }

  down(source, pitch) {
    if (this.held.has(source) || pitch < 0 || pitch > 127) return;
    this.held.set(source, pitch);
    this.light(pitch, true);
    this.send({ type: "note", pitch, velocity: 100 });
  }

  up(source) {
    const pitch = this.held.get(source);
    if (pitch === undefined) return;
    this.held.delete(source);
    if (![...this.held.values()].includes(pitch)) {
      this.light(pitch, false);
      this.send({ type: "note", pitch, velocity: 0 });
    }
  }

  allUp() { for (const source of [...this.held.keys()]) this.up(source); }

  light(pitch, on) {
    const key = this.keys.querySelector(`[data-offset="${pitch - this.base}"]`);
    if (key) key.classList.toggle("down", on);
  }

  // the computer keyboard: true when the key was a note key (the caller then stops it)
  key(e, pressed) {
    const k = e.key.toLowerCase();
    if (pressed && (k === "-" || k === "=")) { this.shift(k === "-" ? -1 : 1); return true; }
    const semis = KEY_SEMITONES[k];
    if (semis === undefined) return false;
    if (pressed) { if (!e.repeat) this.down(`key:${k}`, this.base + semis); } else this.up(`key:${k}`);
    return true;
  }

  sendMorph() {
    if (this.morph.checked) this.send({ type: "morph", a: Number(this.morphA.value), b: Number(this.morphB.value) });
    else this.send({ type: "morph", a: null, b: null });
  }

  update(notes) {
    this.root.hidden = !notes;
    if (!notes) return;
    const names = notes.instruments.join("\n");
    if (names !== this.names) {
      this.names = names;
      for (const select of [this.instrument, this.morphA, this.morphB]) {
        select.replaceChildren(...notes.instruments.map((n, i) => new Option(n, String(i))));
      }
      if (notes.instruments.length > 1) this.morphB.value = "1";
    }
    if (notes.instrument >= 0 && document.activeElement !== this.instrument) this.instrument.value = String(notes.instrument);
    if (document.activeElement !== this.morph) this.morph.checked = Boolean(notes.morph);
    const [lo, hi] = notes.range;
    for (const key of this.keys.children) {
      const pitch = this.base + Number(key.dataset.offset);
      key.classList.toggle("out", pitch < lo || pitch > hi);
    }
    this.root.querySelector("#notes-info").textContent =
      `${notes.sounding} sounding · ${notes.played} played` +
      `${notes.refused ? ` · ${notes.refused} out of range` : ""}` +
      `${notes.morph ? ` · morph ${Math.round(100 * notes.morph_amount)} % (CV 1)` : ""} · keys ${lo}–${hi}`;
  }
}
