// Sound in the browser: the engine's current impact (PCM1 frames) played with WebAudio on gate 1,
// so the page alone is an instrument when the engine has no audio device. A new hit never cuts the
// previous one (each plays on its own buffer source).

export class Sound {
  constructor() {
    this.ctx = null;
    this.buffer = null;
    this.pending = null; // {samples: Float32Array, rate} received before the AudioContext exists
    this.enabled = false;
    this.played = 0;
    this.lastLength = 0;
    this.gain = null;
  }

  /** Create or resume the AudioContext (must run inside a user gesture the first time). */
  unlock() {
    if (!this.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      this.ctx = new Ctx({ latencyHint: "interactive" });
      this.gain = this.ctx.createGain();
      this.gain.gain.value = 0.9;
      this.gain.connect(this.ctx.destination);
      if (this.pending) this.load(this.pending.samples, this.pending.rate);
    }
    if (this.ctx.state === "suspended") this.ctx.resume();
  }

  /** Keep the impact to play: float32 samples at `rate` Hz. */
  load(samples, rate) {
    if (!this.ctx) {
      this.pending = { samples, rate };
      return;
    }
    const buffer = this.ctx.createBuffer(1, Math.max(1, samples.length), rate);
    buffer.copyToChannel(samples, 0);
    this.buffer = buffer;
    this.pending = null;
  }

  /** Play the current impact now (gate 1's rising edge). Returns whether something started. */
  play() {
    if (!this.enabled) return false;
    this.unlock();
    if (!this.ctx || !this.buffer) return false;
    const source = this.ctx.createBufferSource();
    source.buffer = this.buffer;
    source.connect(this.gain);
    source.start();
    this.played += 1;
    this.lastLength = this.buffer.length;
    return true;
  }
}
