// Viral Globe in a browser: a campaign's arcs on a 3D globe (web-src/globe.js) or a flat map, live or
// replayed, with its counters, clock, rates and top places. The protocol client is feed.js (the
// reference client of docs/browser-protocol.md); this file draws. Colours come from the server's
// /palette.json, the viewer's palette. `window.viralGlobe` exposes the page's state for tests and
// debugging.

import { connectFeed } from "./feed.js";
import { createGlobe } from "./embed/viral-globe.js";
import { drawLand } from "./land.js";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const wsBase = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}`;

const ARC_MS = 1400; // an arc's head travels for this long
const FADE_MS = 1600; // then its trail fades for this long
const MAX_IN_FLIGHT = 4000;
// The live arcs a second the page asks for: as many as it can keep in flight (the server sends a
// sample above it, shares and conversions first, and says how many it left out). `max_rate=N` in
// the address asks for another rate; `max_rate=0`, every arc.
const LIVE_RATE = params.has("max_rate")
  ? Number(params.get("max_rate")) || null
  : Math.floor((MAX_IN_FLIGHT * 1000) / (ARC_MS + FADE_MS));
// Clicks far outnumber everything else: drawn at this brightness so shares and conversions show.
const CLICK_BRIGHTNESS = 0.6;
const RATE_WINDOW_MS = 5_000; // events per second are counted over this long
// The arcs' colours (GET /palette.json): by generation, sign-up, purchase, campaign post.
let palette = null;

// What the feed asks the server for (the protocol's own filters), kept in the address:
// `kind=share,conversion`, `channel=facebook`, `generation=2-`.
const filter = {
  kinds: (params.get("kind") || "").split(",").filter((k) => ["share", "click", "conversion"].includes(k)),
  channel: params.get("channel") || "",
  generation: params.get("generation") || "",
};
const filtered = () => filter.kinds.length > 0 || filter.channel !== "" || filter.generation !== "";

const state = {
  campaign: null,
  mode: params.get("mode") === "replay" ? "replay" : "live",
  // `globe` (WebGL, the default) or `map` (the flat view; also where WebGL is missing).
  view: params.get("view") === "map" ? "map" : "globe",
  connection: "connecting",
  arcsReceived: 0,
  kinds: {},
  inFlight: 0,
  framesDrawn: 0,
  counters: { shares: 0, clicks: 0, signups: 0, purchases: 0, revenueCents: 0, generations: 0 },
  clock: null,
  // The headline attribution figures shown (see showAttribution).
  attribution: null,
  filter,
  presenter: params.get("present") === "1",
  // A tracked link's code (`?qr=CODE`): its QR code shows in presenter mode, for the audience.
  qr: /^[0-9A-Za-z]{11}$/.test(params.get("qr") || "") ? params.get("qr") : null,
  // Live: the newest arc's campaign time; arcs a second over the last few seconds.
  campaignTime: null,
  rate: 0,
  tables: null,
  tooltip: null,
  lastError: null,
};
// Where the feed stands in the campaign's arc line, and its continuity as the page saw it (arcs
// that skipped ahead or came twice, resumed connections): the protocol client's.
let feed = null;
for (const [name, none] of [["position", { epoch: null, seq: 0 }], ["gaps", 0], ["duplicates", 0], ["resumes", 0]]) {
  Object.defineProperty(state, name, { enumerable: true, get: () => feed?.[name] ?? none });
}
window.viralGlobe = state;

const $ = (id) => document.getElementById(id);
const withToken = (url) => (token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : url);
const getJson = (path) => fetch(withToken(path)).then((r) => {
  if (r.ok) return r.json();
  const error = new Error(`${path}: ${r.status}`);
  error.status = r.status;
  return Promise.reject(error);
});

// ---- the map ---------------------------------------------------------------------------------

const canvas = $("map");
const ctx = canvas.getContext("2d");
const base = document.createElement("canvas");
let world = null;
let view = { x: 0, y: 0, scale: 1 }; // equirectangular: x = view.x + lon × scale

function project(lon, lat) {
  return [view.x + (lon + 180) * view.scale, view.y + (90 - lat) * view.scale];
}

function resize() {
  const ratio = window.devicePixelRatio || 1;
  const { width, height } = canvas.getBoundingClientRect();
  canvas.width = base.width = Math.max(1, Math.round(width * ratio));
  canvas.height = base.height = Math.max(1, Math.round(height * ratio));
  const scale = Math.min(canvas.width / 360, canvas.height / 180);
  view = { scale, x: (canvas.width - 360 * scale) / 2, y: (canvas.height - 180 * scale) / 2 };
  drawBase();
  for (const flight of flights) flight.points = arcPoints(flight.arc);
}

function drawBase() {
  const b = base.getContext("2d");
  b.fillStyle = "#05070d";
  b.fillRect(0, 0, base.width, base.height);
  b.fillStyle = "#0a1222";
  b.fillRect(view.x, view.y, 360 * view.scale, 180 * view.scale);
  if (!world) return;
  const rect = [view.x, view.y, 360 * view.scale, 180 * view.scale];
  drawLand(b, world, project, rect, { land: "#1a2744", border: "#2f4170", borderWidth: Math.max(0.5, view.scale / 8) });
}

// For tests and debugging: whether the map shows land at a place.
window.viralGlobeMap = {
  landAt(lat, lon) {
    const [x, y] = project(lon, lat);
    const [r, g, b] = base.getContext("2d").getImageData(Math.round(x), Math.round(y), 1, 1).data;
    return Math.abs(r - 0x1a) + Math.abs(g - 0x27) + Math.abs(b - 0x44) < 20;
  },
};

// For tests and debugging: where the newest landed arc is on the globe, in canvas pixels.
window.viralGlobeGlobe = { newestOnScreen: () => globe?.newestOnScreen() ?? null };

// ---- arcs ------------------------------------------------------------------------------------

const flights = [];
// [when, how many] of the arcs received lately, for the rate.
const arrivals = [];
// The WebGL globe (web-src/globe.js, from the embed bundle), when the browser has WebGL.
let globe = null;

const toVector = ({ lat, lon }) => {
  const [φ, λ] = [(lat * Math.PI) / 180, (lon * Math.PI) / 180];
  return [Math.cos(φ) * Math.cos(λ), Math.cos(φ) * Math.sin(λ), Math.sin(φ)];
};

// The great circle from `from` to `to`, lifted off the map in proportion to its length; `null`
// entries break the line where it crosses the antimeridian.
function arcPoints(arc) {
  if (!arc.from) return [project(arc.to.lon, arc.to.lat)];
  const [a, b] = [toVector(arc.from), toVector(arc.to)];
  const angle = Math.acos(Math.min(1, Math.max(-1, a[0] * b[0] + a[1] * b[1] + a[2] * b[2])));
  const lift = Math.min(40, angle * 20) * view.scale;
  const steps = Math.max(2, Math.ceil(angle * 24));
  const points = [];
  let lastX = null;
  for (let i = 0; i <= steps; i++) {
    const t = i / steps;
    const [wa, wb] = angle < 1e-6 ? [1 - t, t] : [Math.sin((1 - t) * angle) / Math.sin(angle), Math.sin(t * angle) / Math.sin(angle)];
    const v = [0, 1, 2].map((k) => wa * a[k] + wb * b[k]);
    const lat = (Math.atan2(v[2], Math.hypot(v[0], v[1])) * 180) / Math.PI;
    const lon = (Math.atan2(v[1], v[0]) * 180) / Math.PI;
    const [x, y] = project(lon, lat);
    if (lastX !== null && Math.abs(x - lastX) > 180 * view.scale) points.push(null);
    points.push([x, y - Math.sin(Math.PI * t) * lift]);
    lastX = x;
  }
  return points;
}

const hex = (css) => [1, 3, 5].map((i) => parseInt(css.slice(i, i + 2), 16));
const css = ([r, g, b]) => `rgb(${Math.round(r)}, ${Math.round(g)}, ${Math.round(b)})`;

// An arc's colour, the viewer's: conversions by goal, campaign posts white, the rest by the
// share's generation; clicks dimmed (never dropped).
function colorOf(arc) {
  if (arc.kind === "conversion") return arc.goal === "purchase" ? palette.purchase : palette.signup;
  if (arc.kind === "share" && !arc.from) return palette.root_share;
  const color = palette.generations[Math.min(arc.generation, palette.generations.length - 1)];
  return arc.kind === "click" ? css(hex(color).map((c) => c * CLICK_BRIGHTNESS)) : color;
}

// How much an arc draws the globe's camera when it follows the action.
const weightOf = (arc) => (arc.kind === "click" ? 1 : 6);

// An arc the feed hands on: live, one the counters do not hold yet.
function addArc(arc) {
  state.arcsReceived++;
  const kind = arc.kind === "conversion" ? arc.goal : arc.kind === "share" && arc.generation > 0 ? "child share" : arc.kind;
  state.kinds[kind] = (state.kinds[kind] || 0) + 1;
  if (state.mode === "live") count(arc);
  state.counters.generations = Math.max(state.counters.generations, arc.generation + 1);
  if (state.mode === "live") state.campaignTime = Math.max(state.campaignTime ?? 0, arc.ts);
  // Each view draws its own arcs: the globe from slots on the GPU, the map from its flights.
  if (state.view === "globe" && globe) globe.add(arc);
  else flights.push({ arc, born: performance.now(), color: colorOf(arc), points: arcPoints(arc) });
  if (flights.length > MAX_IN_FLIGHT) flights.splice(0, flights.length - MAX_IN_FLIGHT);
}

const zeroCounters = () => ({ shares: 0, clicks: 0, signups: 0, purchases: 0, revenueCents: 0, generations: 0 });

// The counters a hello's campaign summary gives.
function countersOf(summary) {
  return {
    shares: summary.shares,
    clicks: summary.clicks,
    signups: summary.goals?.signup ?? 0,
    purchases: summary.goals?.purchase ?? 0,
    revenueCents: summary.revenue_cents,
    generations: summary.shares > 0 ? summary.max_generation + 1 : 0,
  };
}

// Arcs in flight go (a seek, a new loop, another campaign).
function clearArcs() {
  flights.length = 0;
  globe?.clear();
}

// The globe or the flat map; the choice stays in the address.
function showView() {
  if (!globe) state.view = "map";
  $("map").hidden = state.view !== "map";
  $("globe").hidden = state.view !== "globe";
  $("view").value = state.view;
  resize();
  globe?.resize();
}

// The address says what the page shows: campaign, mode, view, filters, presenter mode (and the
// token, if given).
function keepInAddress() {
  params.set("campaign", state.campaign);
  params.set("mode", state.mode);
  params.set("view", state.view);
  const keep = (name, value) => (value ? params.set(name, value) : params.delete(name));
  keep("kind", filter.kinds.join(","));
  keep("channel", filter.channel);
  keep("generation", filter.generation);
  keep("present", state.presenter ? "1" : "");
  keep("qr", state.qr || "");
  history.replaceState(null, "", `?${params}`);
}

function count(arc) {
  // Filtered, the feed brings only some arcs: the counters come from the campaign list instead.
  if (filtered()) return;
  const c = state.counters;
  if (arc.kind === "share") c.shares++;
  if (arc.kind === "click") c.clicks++;
  if (arc.goal === "signup") c.signups++;
  if (arc.goal === "purchase") c.purchases++;
  c.revenueCents += arc.value_cents || 0;
}

function drawFlight(flight, now) {
  const age = (now - flight.born) / ARC_MS;
  const { points } = flight;
  const alpha = age <= 1 ? 1 : Math.max(0, 1 - ((age - 1) * ARC_MS) / FADE_MS);
  ctx.globalAlpha = alpha;
  ctx.strokeStyle = ctx.fillStyle = flight.color;
  const [tx, ty] = points[points.length - 1];
  if (points.length === 1) {
    // A campaign post: a pulse where it was posted.
    const r = (2 + Math.min(age, 2) * 10) * (view.scale / 4);
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(tx, ty, r, 0, 2 * Math.PI);
    ctx.stroke();
    return;
  }
  const head = Math.min(1, age) * (points.length - 1);
  const tail = Math.max(0, Math.min(1, age - 0.45) * (points.length - 1));
  ctx.lineWidth = Math.max(1, view.scale / 5);
  ctx.beginPath();
  let pen = false;
  for (let i = Math.floor(tail); i <= Math.ceil(head); i++) {
    const p = points[i];
    if (!p) { pen = false; continue; }
    if (pen) ctx.lineTo(p[0], p[1]);
    else { ctx.moveTo(p[0], p[1]); pen = true; }
  }
  ctx.stroke();
  if (age >= 1) {
    // Arrival: a ring spreading at the destination.
    ctx.beginPath();
    ctx.arc(tx, ty, (1 + (age - 1) * 6) * (view.scale / 5), 0, 2 * Math.PI);
    ctx.stroke();
  }
}

function frame(now) {
  const limit = 1 + FADE_MS / ARC_MS;
  let kept = 0;
  for (const flight of flights) {
    if ((now - flight.born) / ARC_MS < limit) flights[kept++] = flight;
  }
  flights.length = kept;
  if (state.view === "globe" && globe) {
    globe.draw();
    state.globe = globe.info();
    state.inFlight = state.globe.inFlight;
  } else {
    ctx.globalAlpha = 1;
    ctx.drawImage(base, 0, 0);
    for (const flight of flights) drawFlight(flight, now);
    ctx.globalAlpha = 1;
    state.inFlight = flights.length;
  }
  state.framesDrawn++;
  while (arrivals.length && now - arrivals[0][0] > RATE_WINDOW_MS) arrivals.shift();
  state.rate = arrivals.reduce((sum, [, n]) => sum + n, 0) / (RATE_WINDOW_MS / 1_000);
  showCounters();
  showLiveClock();
  if (pointer) showTooltip(pick(pointer), pointer);
  requestAnimationFrame(frame);
}

// ---- attribution: what the campaign's sharing brought, from the stats API ---------------------

const duration = (s) => (s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : s < 172800 ? `${(s / 3600).toFixed(1)} h` : `${(s / 86400).toFixed(1)} days`);

// The headline figures: the top cascade (a root share and everything its generations brought),
// child shares per campaign post, how soon visits follow a share, the top country by clicks.
async function showAttribution() {
  const campaign = encodeURIComponent(state.campaign);
  const [stats, cascades] = await Promise.all([
    getJson(`/v1/campaigns/${campaign}/stats`),
    getJson(`/v1/campaigns/${campaign}/cascades?limit=1`),
  ]).catch(() => [null, null]);
  const top = cascades?.cascades?.[0];
  const k = stats?.virality?.by_generation?.[0]?.k_factor;
  const delay = stats?.delays?.all?.share_to_click?.p50_s;
  const country = stats?.places?.all?.countries_by_clicks?.[0];
  showTables(stats);
  state.attribution = { top: top ?? null, kFactor: k ?? null, clickDelayS: delay ?? null, country: country ?? null };
  $("top-cascade").textContent = top
    ? `${top.channel} post: $${number(top.totals.revenue_cents / 100)}, ${top.depth} generations`
    : "—";
  $("k-factor").textContent = k == null ? "—" : ratioFigure(k);
  $("click-delay").textContent = delay == null ? "—" : duration(delay);
  $("top-country").textContent = country ? `${country.name} (${number(country.clicks)} clicks)` : "—";
  $("attribution").hidden = !top;
}

// ---- counters, clock and timeline -------------------------------------------------------------

const number = (n) => Math.round(n).toLocaleString("en-US");
// A ratio for people: one decimal below 10 (2.3, 2), whole above (1,314), never "1314.0".
const ratioFigure = (x) => (x < 10 ? x.toLocaleString("en-US", { maximumFractionDigits: 1 }) : number(x));

function showCounters() {
  const c = state.counters;
  $("shares").textContent = number(c.shares);
  $("clicks").textContent = number(c.clicks);
  $("signups").textContent = number(c.signups);
  $("purchases").textContent = number(c.purchases);
  $("revenue").textContent = `$${number(c.revenueCents / 100)}`;
  $("generations").textContent = number(c.generations);
}

let timeline = null;
let seeking = false;

async function loadTimeline() {
  timeline = await getJson(`/v1/campaigns/${encodeURIComponent(state.campaign)}/timeline?buckets=300`);
  const activity = $("activity");
  const { width, height } = activity.getBoundingClientRect();
  activity.width = Math.max(1, Math.round(width));
  activity.height = Math.max(1, Math.round(height));
  const a = activity.getContext("2d");
  // Square-root heights: a launch's first hours dwarf its tail, which should still show.
  const peak = Math.sqrt(Math.max(1, ...timeline.buckets.map((b) => b.clicks + b.shares)));
  const w = activity.width / timeline.buckets.length;
  timeline.buckets.forEach((b, i) => {
    const h = (Math.sqrt(b.clicks + b.shares) / peak) * activity.height;
    a.fillStyle = "#2b5c8a";
    a.fillRect(i * w, activity.height - h, Math.max(1, w - 0.5), h);
  });
}

// In a replay the counters are the campaign's activity up to the playhead.
function countersAt(ts) {
  const c = { shares: 0, clicks: 0, signups: 0, purchases: 0, revenueCents: 0, generations: state.counters.generations };
  if (!timeline) return c;
  for (let i = 0; i < timeline.buckets.length; i++) {
    const start = timeline.from + i * timeline.bucket_ms;
    if (start > ts) break;
    // The last bucket may reach past the recording's end: at its end, every bucket is whole.
    const part = ts >= timeline.to ? 1 : Math.min(1, (ts - start) / timeline.bucket_ms);
    const b = timeline.buckets[i];
    c.shares += b.shares * part;
    c.clicks += b.clicks * part;
    c.signups += b.signups * part;
    c.purchases += b.purchases * part;
    c.revenueCents += b.revenue_cents * part;
  }
  return c;
}

function showClock(clock) {
  state.clock = clock;
  state.counters = countersAt(clock.ts);
  showCounters(); // now, not at the next frame: a busy frame may be long in coming
  $("clock").textContent = new Date(clock.ts).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  $("play").textContent = clock.playing ? "Pause" : "Play";
  if (!seeking) {
    const span = Math.max(1, clock.to - clock.from);
    $("seek").value = String(Math.round(((clock.ts - clock.from) / span) * 1000));
  }
}

// A slow link: the server dropped arcs for this page rather than slow anyone else. Said for a while.
let laggedTimer = null;
function showLagged(dropped) {
  state.lagged = (state.lagged || 0) + dropped;
  const el = $("lagged");
  el.textContent = `This connection fell behind: ${number(state.lagged)} arcs were not shown`;
  el.hidden = false;
  clearTimeout(laggedTimer);
  laggedTimer = setTimeout(() => (el.hidden = true), 8000);
}

// ---- what an arc is: the tooltip -----------------------------------------------------------

// The pointer over the globe or the map (CSS pixels in the view), while it is there.
let pointer = null;

// The arc under `at` in the view shown: on the globe, any point of its drawn part; on the map,
// where it lands.
function pick(at) {
  if (state.view === "globe" && globe) return globe.pick(at);
  const ratio = canvas.width / Math.max(1, canvas.getBoundingClientRect().width);
  let best = null;
  for (const flight of flights) {
    const end = flight.points[flight.points.length - 1];
    const d = Math.hypot(end[0] / ratio - at[0], end[1] / ratio - at[1]);
    if (d <= 14 && (!best || d < best.d)) best = { arc: flight.arc, d };
  }
  return best?.arc ?? null;
}

const placeName = (p) => (p ? [p.city, p.country].filter(Boolean).join(", ") || `${p.lat.toFixed(1)}°, ${p.lon.toFixed(1)}°` : "an unknown place");
const generationName = (g) => (g === 0 ? "a campaign post" : `generation ${g}`);

// What a person wants to know of an arc: what happened where, from which share, worth what.
function describe(arc) {
  const lines = [];
  if (arc.kind === "share" && !arc.from) {
    lines.push(`Campaign post on ${arc.channel} in ${placeName(arc.to)}`);
    if (arc.reach) lines.push(`to ${number(arc.reach)} fans`);
  } else if (arc.kind === "share") {
    lines.push(`Share on ${arc.channel} in ${placeName(arc.to)}`, `from ${placeName(arc.from)}, generation ${arc.generation}`);
  } else {
    const what = arc.kind === "click" ? "Visit" : arc.goal === "purchase" ? "Purchase" : arc.goal === "signup" ? "Sign-up" : `Conversion (${arc.goal})`;
    lines.push(`${what} in ${placeName(arc.kind === "click" ? arc.to : arc.from ?? arc.to)}`);
    lines.push(`via a ${arc.channel} share (${generationName(arc.generation)}) in ${placeName(arc.kind === "click" ? arc.from : arc.to)}`);
  }
  if (arc.value_cents) lines.push(`$${(arc.value_cents / 100).toFixed(2)}`);
  lines.push(`share ${arc.share} · ${new Date(arc.ts).toISOString().slice(0, 16).replace("T", " ")} UTC`);
  return lines;
}

function showTooltip(arc, at) {
  const el = $("tooltip");
  if (!arc) {
    el.hidden = true;
    return;
  }
  const lines = describe(arc);
  if (state.tooltip?.arc !== arc) {
    el.replaceChildren(...lines.map((text, i) => Object.assign(document.createElement(i ? "span" : "b"), { textContent: text })));
  }
  state.tooltip = { arc, text: lines.join("\n") };
  el.hidden = false;
  const area = $("view-area").getBoundingClientRect();
  el.style.left = `${Math.min(at[0] + 14, area.width - el.offsetWidth - 4)}px`;
  el.style.top = `${Math.min(at[1] + 14, area.height - el.offsetHeight - 4)}px`;
}

function watchPointer(element) {
  const at = (e) => {
    const r = element.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  };
  element.addEventListener("pointermove", (e) => (pointer = at(e)));
  element.addEventListener("pointerleave", () => {
    pointer = null;
    showTooltip(null);
  });
  // A tap shows what is under it until the next tap.
  element.addEventListener("pointerup", (e) => {
    if (e.pointerType !== "mouse") pointer = at(e);
  });
}

// ---- live: the campaign clock, the rate, counters under a filter ------------------------------

function showLiveClock() {
  const live = state.mode === "live";
  $("live-clock").hidden = !live;
  $("rate").textContent = `${number(state.rate)}/s`;
  if (!live) return;
  $("campaign-time").textContent = state.campaignTime
    ? new Date(state.campaignTime).toISOString().slice(0, 19).replace("T", " ") + " UTC"
    : "waiting for the first arc";
}

// Filtered, the feed does not bring every arc: the campaign's own counters, every 2 s.
async function refreshCounters() {
  if (state.mode !== "live" || !(filtered() || state.countersFromList)) return;
  const list = await getJson("/v1/campaigns").catch(() => null);
  const ours = list?.campaigns.find((c) => c.id === state.campaign);
  if (ours) state.counters = countersOf(ours);
}

// ---- filters ---------------------------------------------------------------------------------

function showFilter() {
  for (const kind of ["share", "click", "conversion"]) {
    $(`kind-${kind}`).checked = filter.kinds.length === 0 || filter.kinds.includes(kind);
  }
  $("channel").value = filter.channel;
  $("generation").value = filter.generation;
  $("filtered").hidden = !filtered();
}

function readFilter() {
  const kinds = ["share", "click", "conversion"].filter((k) => $(`kind-${k}`).checked);
  filter.kinds = kinds.length === 3 ? [] : kinds;
  filter.channel = $("channel").value;
  filter.generation = $("generation").value;
  showFilter();
  connect();
}

// ---- top places and channels, from the stats API ----------------------------------------------

function fillTable(id, rows) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const cell of cells) tr.append(Object.assign(document.createElement("td"), { textContent: cell }));
    return tr;
  }));
}

function showTables(stats) {
  const places = stats?.places?.all;
  if (!places) return;
  const money = (cents) => `$${number(cents / 100)}`;
  const cities = places.cities_by_clicks.slice(0, 5).map((c) => [`${c.name}, ${c.country}`, number(c.clicks), money(c.revenue_cents)]);
  const countries = places.countries_by_clicks.slice(0, 5).map((c) => [c.name, number(c.clicks), money(c.revenue_cents)]);
  const channels = Object.entries(stats.by_channel ?? {})
    .sort(([, a], [, b]) => b.clicks - a.clicks)
    .map(([name, c]) => [name, number(c.shares), number(c.clicks), money(c.revenue_cents)]);
  fillTable("top-cities", cities);
  fillTable("top-countries", countries);
  fillTable("top-channels", channels);
  state.tables = { cities, countries, channels };
  // The channel filter offers the campaign's channels.
  const select = $("channel");
  const known = new Set([...select.options].map((o) => o.value));
  for (const [name] of channels) if (!known.has(name)) select.append(new Option(name, name));
  select.value = filter.channel;
}

// ---- presenter mode: full screen, the HUD sized for a room -------------------------------------

function present(on) {
  state.presenter = on;
  document.body.classList.toggle("presenter", on);
  $("present").textContent = on ? "Exit" : "Present";
  if (on && !document.fullscreenElement) document.documentElement.requestFullscreen?.().catch(() => {});
  if (!on && document.fullscreenElement) document.exitFullscreen?.().catch(() => {});
  keepInAddress();
}

// ---- the legend, from the palette -------------------------------------------------------------

function showLegend() {
  const item = (color, text, round) => {
    const li = document.createElement("li");
    const swatch = Object.assign(document.createElement("i"), { className: round ? "round" : "" });
    swatch.style.background = color;
    li.append(swatch, text);
    return li;
  };
  const g = palette.generations;
  $("legend").replaceChildren(
    item(palette.root_share, "campaign post", true),
    ...g.map((color, i) => item(color, `share, generation ${i}${i === g.length - 1 ? "+" : ""}`)),
    item(css(hex(g[0]).map((c) => c * CLICK_BRIGHTNESS)), "visit (a click; dimmer, coloured by its share)"),
    item(palette.signup, "sign-up (inbound)"),
    item(palette.purchase, "purchase (inbound)"),
  );
}

// ---- the connection --------------------------------------------------------------------------

function setConnection(value) {
  state.connection = value;
  const el = $("connection");
  el.textContent = value;
  el.className = `state ${value}`;
}

const send = (message) => feed?.send(message);

// Opens the campaign's feed in the page's mode; a lost connection is resumed by the feed itself.
async function connect() {
  feed?.close();
  feed = null;
  clearArcs();
  keepInAddress();
  state.arcsReceived = 0;
  state.kinds = {};
  state.campaignTime = null;
  arrivals.length = 0;
  // Live, the counters come with the hello: the campaign's so far, where its line stands.
  state.counters = zeroCounters();
  state.countersFromList = false;
  $("replay").hidden = state.mode !== "replay";
  showAttribution();
  if (state.mode === "replay") await loadTimeline().catch((e) => (state.lastError = String(e)));
  feed = connectFeed({
    base: wsBase,
    campaign: state.campaign,
    mode: state.mode,
    token,
    replayQuery: () => `speed=${$("speed").value}${state.clock?.playing === false ? "&paused=true" : ""}`,
    onHello: (summary) => { if (state.mode === "live") state.counters = countersOf(summary); },
    filter: { kind: filter.kinds.join(","), channel: filter.channel, generation: filter.generation },
    // Live arcs in the compact binary encoding (a tenth of the bytes of JSON), unless the address
    // asks for the reference encoding (`encoding=json`).
    encoding: params.get("encoding") === "json" ? "json" : "compact",
    maxRate: LIVE_RATE,
    onArcs: (arcs) => {
      arrivals.push([performance.now(), arcs.length]);
      arcs.forEach(addArc);
    },
    // What the rate left out still counts: shares and clicks here; skipped conversions carry
    // goals and revenue, so then the counters come from the campaign list, as when filtered.
    onSkipped: (skipped) => {
      arrivals.push([performance.now(), skipped.arcs]);
      if (filtered()) return;
      state.counters.shares += skipped.shares;
      state.counters.clicks += skipped.clicks;
      if (skipped.conversions > 0) state.countersFromList = true;
    },
    onClock: showClock,
    onLag: showLagged,
    onReset: () => {
      // The campaign's arc line started over (a demo loop): so do the counters.
      clearArcs();
      if (state.mode === "live") state.counters = zeroCounters();
    },
    onError: (message) => { state.lastError = message; console.warn(message); },
    onStatus: setConnection,
    // A refused token (changed on the server, say) is not retried: the page asks for one.
    onRefused: async () => {
      const refused = await fetch(withToken("/v1/campaigns")).then((r) => r.status === 401, () => false);
      if (refused) askForToken();
      return refused;
    },
  });
}

// ---- a server that wants a read token --------------------------------------------------------

// Asks for the token and reloads with it; retrying without one would only be refused again.
function askForToken() {
  state.connection = "token needed";
  setConnection("token needed");
  $("token-form").hidden = false;
  $("token").focus();
}

// ---- start -----------------------------------------------------------------------------------

async function start() {
  $("mode").value = state.mode;
  palette = await getJson("/palette.json");
  showLegend();
  showFilter();
  for (const id of ["kind-share", "kind-click", "kind-conversion", "channel", "generation"]) {
    $(id).addEventListener("change", readFilter);
  }
  $("present").addEventListener("click", () => present(!state.presenter));
  document.addEventListener("keydown", (e) => {
    if (e.key === "p" && !(e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement)) present(!state.presenter);
  });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    params.set("token", $("token").value);
    location.search = params.toString();
  });
  const [list, geography] = await Promise.all([getJson("/v1/campaigns"), getJson("/world.json")]);
  world = geography;
  const campaigns = list.campaigns.sort((a, b) => b.clicks - a.clicks);
  for (const c of campaigns) $("campaign").append(new Option(`${c.id} (${number(c.clicks)} clicks)`, c.id));
  state.campaign = params.get("campaign") || campaigns[0]?.id || "";
  $("campaign").value = state.campaign;
  try {
    globe = createGlobe($("globe"), world, colorOf, weightOf);
    watchPointer(globe.canvas);
  } catch (e) {
    state.lastError = `no WebGL, the flat map instead: ${e}`;
  }
  watchPointer(canvas);
  showView();
  if (state.qr) {
    $("qr").querySelector("img").src = `/v1/links/${state.qr}/qr.svg`;
    $("qr").hidden = false;
  }
  if (state.presenter) present(true);
  // The view changes size with the window and with the layout (the panel filling in).
  new ResizeObserver(() => state.view === "map" && resize()).observe($("view-area"));
  $("view").addEventListener("change", (e) => { state.view = e.target.value; showView(); keepInAddress(); });
  $("campaign").addEventListener("change", (e) => { state.campaign = e.target.value; connect(); });
  $("mode").addEventListener("change", (e) => { state.mode = e.target.value; connect(); });
  $("play").addEventListener("click", () => send({ type: state.clock?.playing === false ? "play" : "pause" }));
  $("speed").addEventListener("change", (e) => send({ type: "speed", speed: Number(e.target.value) }));
  $("seek").addEventListener("input", () => (seeking = true));
  $("seek").addEventListener("change", (e) => {
    seeking = false;
    if (!state.clock) return;
    const { from, to } = state.clock;
    clearArcs();
    send({ type: "seek", ts: Math.round(from + (Number(e.target.value) / 1000) * (to - from)) });
  });
  requestAnimationFrame(frame);
  // A live campaign's attribution moves as it grows.
  setInterval(() => state.mode === "live" && showAttribution(), 15_000);
  setInterval(refreshCounters, 2_000);
  await connect();
}

start().catch((e) => {
  state.lastError = String(e);
  if (e.status === 401) askForToken();
  else setConnection("closed");
});
