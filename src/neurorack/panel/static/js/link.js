// The WebSocket to the panel server: JSON text messages and tagged binary frames (SCRN, PCM1).
// Reconnects with a growing delay; the token of the page's own address is passed on.

const decoder = new TextDecoder();

/** Split a binary frame: 4-byte tag, uint32 LE header length, JSON header, payload (4-byte aligned). */
export function unpackFrame(buffer) {
  const view = new DataView(buffer);
  const tag = String.fromCharCode(view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3));
  const n = view.getUint32(4, true);
  const header = JSON.parse(decoder.decode(new Uint8Array(buffer, 8, n)));
  return { tag, header, payload: buffer.slice(8 + n) };
}

export class Link {
  /** @param {{onMessage: Function, onFrame: Function, onState: Function}} handlers */
  constructor(handlers) {
    this.handlers = handlers;
    this.ws = null;
    this.delay = 250;
    this.open = false;
    const params = new URLSearchParams(location.search);
    this.token = params.get("token");
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = this.token ? `?token=${encodeURIComponent(this.token)}` : "";
    return `${scheme}//${location.host}/ws${query}`;
  }

  connect() {
    const ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.open = true;
      this.delay = 250;
      this.handlers.onState(true);
    };
    ws.onclose = () => {
      this.open = false;
      this.handlers.onState(false);
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
    ws.onmessage = (event) => {
      if (typeof event.data === "string") {
        let msg;
        try { msg = JSON.parse(event.data); } catch { return; }
        this.handlers.onMessage(msg);
      } else {
        this.handlers.onFrame(unpackFrame(event.data));
      }
    };
  }

  /** Send one message object; dropped while disconnected (controls are state, the next change resends). */
  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }
}
