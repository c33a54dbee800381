// <viral-globe>: the globe of a campaign's arcs for anyone's page, as one custom element. It wraps
// the page's own pieces — the protocol client (../web/feed.js), the WebGL globe (./globe.js) and
// the flat map's land (../web/land.js) — in a shadow root, so the host page's styles and its own
// do not meet. Bundled with three.js into ../embed/viral-globe.js by `npm run embed` (published as
// the npm package `viralglobe-globe`, and served by the server at /embed/viral-globe.js, where the
// server's own page takes `createGlobe` from too).
//
//   <script type="module" src="https://globe.example/embed/viral-globe.js"></script>
//   <viral-globe server="https://globe.example" campaign="launch" token="…"></viral-globe>
//
// Attributes (read when the element connects; changing one reconnects it): `server` (default: the
// origin the script came from), `campaign`, `token` (a read token, or a token scoped to the
// campaign), `mode` (`live` | `replay`), `view` (`globe` | `map`), `max-rate` (live arcs a
// second at most: the server sends a sample, shares and conversions first, and counts the rest), `palette` (JSON over the server's palette,
// e.g. `{"root_share": "#ffcc00"}`), `auto-rotate` (`false`: still when idle), `hud` (`off`:
// no counters). Events on the element: `hello`, `arc`, `lagged`, `reset`, `refused`.

import { connectFeed } from "../web/feed.js";
import { drawLand } from "../web/land.js";
import { createGlobe } from "./globe.js";

const ATTRIBUTES = ["server", "campaign", "token", "mode", "view", "max-rate", "palette", "auto-rotate", "hud"];
const HERE = new URL(import.meta.url).origin;
const MAP_ARC_MS = 3_000; // an arc on the flat map fades over this long
const MAP_ARCS = 2_000; // arcs kept on the flat map at most

const STYLE = `
  :host { display: block; position: relative; min-height: 200px; background: #05070d; color: #d8e2f5;
    font: 13px/1.4 system-ui, sans-serif; overflow: hidden; }
  .stage, canvas { position: absolute; inset: 0; width: 100%; height: 100%; }
  .hud { position: absolute; left: 10px; top: 8px; pointer-events: none; text-shadow: 0 1px 2px #000; }
  .hud b { font-weight: 600; }
  .message { position: absolute; inset: auto 10px 10px 10px; padding: 8px 10px; border-radius: 6px;
    background: #3a1620e6; color: #ffd9de; }
  [hidden] { display: none !important; }
`;

const number = (n) => new Intl.NumberFormat("en-US").format(n);

class ViralGlobe extends HTMLElement {
  static observedAttributes = ATTRIBUTES;

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<style>${STYLE}</style><div class="stage" part="stage"></div>
      <div class="hud" part="hud"></div><div class="message" part="message" role="alert" hidden></div>`;
    this.counts = { arcs: 0, drawn: 0, skipped: 0, shares: 0, clicks: 0, conversions: 0 };
    this.state = "idle";
  }

  connectedCallback() {
    this.start();
  }

  disconnectedCallback() {
    this.stop();
  }

  attributeChangedCallback(_name, before, after) {
    if (this.isConnected && before !== after && this.state !== "idle") {
      this.stop();
      this.start();
    }
  }

  // What the element shows, for the host page and for tests.
  info() {
    return { state: this.state, view: this.view, ...this.counts, message: this.message ?? null };
  }

  option(name, fallback) {
    return this.getAttribute(name) ?? fallback;
  }

  async start() {
    const run = (this.run = {});
    this.state = "connecting";
    this.message = null;
    this.counts = { arcs: 0, drawn: 0, skipped: 0, shares: 0, clicks: 0, conversions: 0 };
    const server = this.option("server", HERE).replace(/\/$/, "");
    const campaign = this.option("campaign", "");
    const token = this.option("token", null);
    this.view = this.option("view", "globe") === "map" ? "map" : "globe";
    const mode = this.option("mode", "live") === "replay" ? "replay" : "live";
    const maxRate = Number(this.option("max-rate", "0")) || null;
    this.shadowRoot.querySelector(".hud").hidden = this.option("hud", "on") === "off";
    const stage = this.shadowRoot.querySelector(".stage");
    stage.replaceChildren();
    const [world, palette] = await Promise.all([
      fetch(`${server}/world.json`).then((r) => r.json()),
      fetch(`${server}/palette.json`).then((r) => r.json()),
    ]).catch((e) => [null, { error: e }]);
    if (run !== this.run) return;
    if (!world) return this.refuse(`cannot reach the server ${server}`);
    // Asked over HTTP first: a refused websocket says nothing of why.
    const refusal = await this.refusal(server, campaign, token);
    if (run !== this.run) return;
    if (refusal) return this.refuse(refusal.message, refusal.status);
    Object.assign(palette, parsePalette(this.option("palette", "")));
    const colorOf = (arc) => {
      if (arc.kind === "conversion") return arc.goal === "purchase" ? palette.purchase : palette.signup;
      if (arc.kind === "share" && !arc.from) return palette.root_share;
      return palette.generations[Math.min(arc.generation, palette.generations.length - 1)];
    };
    this.drawer = this.view === "globe" && webgl()
      ? globeDrawer(stage, world, colorOf, this.option("auto-rotate", "true") !== "false")
      : mapDrawer(stage, world, colorOf);
    this.view = this.drawer.view;
    this.feed = connectFeed({
      base: server.replace(/^http/, "ws"),
      campaign,
      mode,
      token,
      maxRate,
      onStatus: (status) => { this.state = status; this.showHud(campaign); },
      onHello: (summary) => {
        Object.assign(this.counts, { shares: summary.shares, clicks: summary.clicks, conversions: summary.conversions });
        this.emit("hello", summary);
        this.showHud(campaign);
      },
      onArcs: (arcs) => {
        for (const arc of arcs) {
          this.counts.arcs++;
          if (mode === "live") this.counts[arc.kind === "share" ? "shares" : arc.kind === "click" ? "clicks" : "conversions"]++;
          this.counts.drawn++;
          this.drawer.add(arc);
          this.emit("arc", arc);
        }
        this.showHud(campaign);
      },
      // What `max-rate` left out: counted, never drawn.
      onSkipped: ({ arcs, shares, clicks, conversions }) => {
        this.counts.skipped += arcs;
        this.counts.shares += shares;
        this.counts.clicks += clicks;
        this.counts.conversions += conversions;
        this.showHud(campaign);
      },
      onLag: (dropped) => this.emit("lagged", { dropped }),
      onReset: (epoch) => {
        this.drawer.clear();
        this.emit("reset", { epoch });
      },
      onError: (message) => console.warn(`viral-globe: ${message}`),
      // Refused later (a token expired, or was changed on the server): not retried.
      onRefused: async () => {
        const refusal = await this.refusal(server, campaign, token);
        if (refusal && run === this.run) this.refuse(refusal.message, refusal.status);
        return !!refusal;
      },
    });
    const frame = () => {
      if (run !== this.run) return;
      this.drawer.draw();
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }

  // Why the server refuses this token for this campaign, if it does (401, 403).
  async refusal(server, campaign, token) {
    const query = token ? `?token=${encodeURIComponent(token)}` : "";
    const answer = await fetch(`${server}/v1/campaigns/${encodeURIComponent(campaign)}/stats${query}`)
      .then(async (r) => ({ status: r.status, body: await r.json().catch(() => ({})) }), () => null);
    if (!answer || (answer.status !== 401 && answer.status !== 403)) return null;
    return { status: answer.status, message: answer.body.error ?? `refused (${answer.status})` };
  }

  stop() {
    this.run = null;
    this.feed?.close();
    this.feed = null;
    this.drawer?.dispose();
    this.drawer = null;
    this.state = "idle";
  }

  refuse(message, status = 0) {
    this.state = "refused";
    this.message = message;
    const box = this.shadowRoot.querySelector(".message");
    box.textContent = status === 401 || status === 403 ? `Access refused: ${message}` : message;
    box.hidden = false;
    this.feed?.close();
    this.emit("refused", { status, message });
  }

  showHud(campaign) {
    const hud = this.shadowRoot.querySelector(".hud");
    if (hud.hidden) return;
    const c = this.counts;
    hud.innerHTML = `<b></b><br>${number(c.shares)} shares · ${number(c.clicks)} clicks · ${number(c.conversions)} conversions`;
    hud.querySelector("b").textContent = `${campaign} — ${this.state}`;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

function parsePalette(text) {
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    console.warn("viral-globe: the palette attribute is not JSON");
    return {};
  }
}

function webgl() {
  return !!document.createElement("canvas").getContext("webgl2");
}

function globeDrawer(stage, world, colorOf, autoRotate) {
  const globe = createGlobe(stage, world, colorOf, (arc) => (arc.kind === "click" ? 1 : 6), { autoRotate });
  return {
    view: "globe",
    add: (arc) => globe.add(arc),
    clear: () => globe.clear(),
    draw: () => globe.draw(),
    dispose: () => globe.dispose(),
  };
}

// The flat map (equirectangular): land once, arcs as curves that fade.
function mapDrawer(stage, world, colorOf) {
  const canvas = document.createElement("canvas");
  stage.append(canvas);
  const ctx = canvas.getContext("2d");
  const land = document.createElement("canvas");
  let view = { x: 0, y: 0, scale: 1 };
  const project = (lon, lat) => [view.x + (lon + 180) * view.scale, view.y + (90 - lat) * view.scale];
  const resize = () => {
    const ratio = window.devicePixelRatio || 1;
    const { width, height } = stage.getBoundingClientRect();
    canvas.width = land.width = Math.max(1, Math.round(width * ratio));
    canvas.height = land.height = Math.max(1, Math.round(height * ratio));
    const scale = Math.min(canvas.width / 360, canvas.height / 180);
    view = { scale, x: (canvas.width - 360 * scale) / 2, y: (canvas.height - 180 * scale) / 2 };
    const l = land.getContext("2d");
    l.fillStyle = "#0a1222";
    l.fillRect(view.x, view.y, 360 * scale, 180 * scale);
    drawLand(l, world, project, [view.x, view.y, 360 * scale, 180 * scale],
      { land: "#1a2744", border: "#2f4170", borderWidth: Math.max(0.5, scale / 8) });
  };
  const observer = new ResizeObserver(resize);
  observer.observe(stage);
  resize();
  let arcs = [];
  return {
    view: "map",
    add(arc) {
      arcs.push({ arc, born: performance.now(), color: colorOf(arc) });
      if (arcs.length > MAP_ARCS) arcs = arcs.slice(-MAP_ARCS);
    },
    clear: () => (arcs = []),
    draw() {
      const now = performance.now();
      arcs = arcs.filter((a) => now - a.born < MAP_ARC_MS);
      ctx.drawImage(land, 0, 0);
      ctx.lineWidth = Math.max(1, view.scale / 4);
      for (const { arc, born, color } of arcs) {
        const [x1, y1] = project(arc.to.lon, arc.to.lat);
        const [x0, y0] = arc.from ? project(arc.from.lon, arc.from.lat) : [x1, y1];
        ctx.globalAlpha = 1 - (now - born) / MAP_ARC_MS;
        ctx.strokeStyle = color;
        ctx.beginPath();
        ctx.moveTo(x0, y0);
        const lift = Math.min(40 * view.scale, Math.hypot(x1 - x0, y1 - y0) / 3);
        ctx.quadraticCurveTo((x0 + x1) / 2, (y0 + y1) / 2 - lift, x1, y1);
        ctx.stroke();
      }
      ctx.globalAlpha = 1;
    },
    dispose: () => observer.disconnect(),
  };
}

if (!customElements.get("viral-globe")) customElements.define("viral-globe", ViralGlobe);

// The page (`/`) draws with the same globe from this one bundle, so three.js ships once.
export { ViralGlobe, createGlobe };
