// The protocol client of docs/browser-protocol.md, apart from any drawing: opens a campaign's live
// feed or a replay, and after a lost connection opens it again after the last arc received
// (`since`, `epoch`), so nothing is missed or counted twice. What arrives goes to the callbacks:
//
//   const feed = connectFeed({ base: "ws://127.0.0.1:8080", campaign: "bones-brigade",
//     onHello: (campaign) => …, onArcs: (arcs) => …, onReset: (epoch) => …, onLag: (dropped) => … });
//   feed.close();
//
// `filter: {kind: "share,conversion", channel: "facebook", generation: "2-"}` asks the server for
// only those arcs (empty values: all); `encoding: "compact"` has live arcs come in the compact
// binary encoding (decodeCompact below; about a fifth of the bytes of JSON); `maxRate: 200` asks
// for at most 200 live arcs a second (shares and conversions first), and `onSkipped` hears, by
// kind, what the rate left out (`{arcs, shares, clicks, conversions}`, about once a second). `mode: "replay"` opens a replay instead (`replayQuery()` adds its options, e.g. `speed=86400`),
// whose `clock` messages go to `onClock`; `feed.send({type: "pause"})` steers it. A live feed
// hands on only arcs after the last one it handed on (a repeat is counted in `feed.duplicates`,
// a skip in `feed.gaps`, unfiltered); a replay hands on everything, as its seeks number arcs afresh.
// A live feed whose websocket cannot open at all (a proxy that breaks websockets) reads the same
// messages as server-sent events instead (`/v1/live/events`, JSON); `feed.transport` says which.

export function connectFeed({
  base, campaign, mode = "live", token = null, filter = {}, encoding = "json", replayQuery = () => "",
  maxRate = null, onHello = () => {}, onArcs = () => {}, onClock = () => {}, onLag = () => {},
  onSkipped = () => {}, onReset = () => {}, onError = () => {}, onStatus = () => {}, onRefused = null,
}) {
  const feed = {
    position: { epoch: null, seq: 0 }, duplicates: 0, gaps: 0, resumes: 0, transport: "websocket",
    sampled: false,
  };
  const filtered = Object.values(filter).some(Boolean);
  let socket = null;
  let retry = 0;
  let closed = false;

  const withToken = (url) => (token ? `${url}&token=${encodeURIComponent(token)}` : url);
  const urlFor = (resume) => {
    const c = encodeURIComponent(campaign);
    const since = resume && feed.position.epoch
      ? `&since=${feed.position.seq}&epoch=${encodeURIComponent(feed.position.epoch)}`
      : "";
    const path = mode === "live"
      ? `/v1/live?campaign=${c}`
      : `/v1/campaigns/${c}/replay?${replayQuery()}`;
    const only = Object.entries(filter)
      .filter(([, value]) => value)
      .map(([name, value]) => `&${name}=${encodeURIComponent(value)}`)
      .join("");
    const compact = mode === "live" && encoding === "compact" ? "&encoding=compact" : "";
    const rate = mode === "live" && maxRate ? `&max_rate=${Math.max(1, Math.floor(maxRate))}` : "";
    return withToken(`${base}${path}${only}${compact}${rate}${since}`);
  };

  function arcs(list) {
    if (mode !== "live") {
      feed.position.seq = list[list.length - 1]?.seq ?? feed.position.seq;
      return onArcs(list);
    }
    const fresh = [];
    for (const arc of list) {
      if (feed.position.epoch && arc.seq <= feed.position.seq) { feed.duplicates++; continue; }
      // A filtered feed skips the arcs it leaves out, a sampled one those its rate left out (it
      // is told so before the first): a gap only where neither is.
      if (feed.position.epoch && arc.seq > feed.position.seq + 1 && !filtered && !feed.sampled) feed.gaps++;
      feed.position.seq = arc.seq;
      fresh.push(arc);
    }
    if (fresh.length) onArcs(fresh);
  }

  function open(resume) {
    if (resume && feed.position.epoch) feed.resumes++;
    if (feed.transport === "events") return openEvents();
    const ws = new WebSocket(urlFor(resume));
    ws.binaryType = "arraybuffer";
    socket = ws;
    onStatus("connecting");
    let opened = false;
    ws.onopen = () => { opened = true; retry = 0; onStatus("open"); };
    ws.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) {
        try {
          arcs(decodeCompact(new Uint8Array(event.data)));
        } catch (e) {
          onError(String(e));
        }
        return;
      }
      message(event.data);
    };
    ws.onclose = async () => {
      if (closed || socket !== ws) return;
      // Never opened, though the server may be there: read the live feed as events instead.
      if (!opened && mode === "live" && typeof EventSource !== "undefined") {
        feed.transport = "events";
        return openEvents();
      }
      onStatus("closed");
      // A refused token is not retried: whoever opened the feed is told.
      if (onRefused && (await onRefused())) return;
      retry = Math.min(retry + 1, 5);
      setTimeout(() => !closed && socket === ws && open(true), 1000 * retry);
    };
  }

  // The live feed as server-sent events: the same messages, JSON only. The browser reconnects
  // by itself, resuming after the last event's id (`epoch:seq`).
  function openEvents() {
    const url = urlFor(true)
      .replace(/^ws/, "http")
      .replace("/v1/live?", "/v1/live/events?")
      .replace("&encoding=compact", "");
    const source = new EventSource(url);
    socket = source;
    onStatus("connecting");
    source.onopen = () => { retry = 0; onStatus("open"); };
    source.onmessage = (event) => message(event.data);
    source.onerror = async () => {
      if (closed || socket !== source) return;
      // The browser retries by itself, except after an answer that is not a stream (a refused
      // token, a 503): then the feed decides, as for a websocket.
      if (source.readyState !== EventSource.CLOSED) return onStatus("connecting");
      onStatus("closed");
      if (onRefused && (await onRefused())) return;
      retry = Math.min(retry + 1, 5);
      setTimeout(() => !closed && socket === source && open(true), 1000 * retry);
    };
  }

  // One message of the protocol, from either transport.
  function message(text) {
    const message = JSON.parse(text);
    switch (message.type) {
      case "arc": arcs([message]); break;
      case "arcs": arcs(message.arcs); break;
      case "clock": onClock(message); break;
      case "lagged": onLag(message.dropped_arcs); break;
      case "skipped":
        feed.sampled = true;
        onSkipped(message);
        break;
      case "error": onError(message.message); break;
      case "hello": {
        const ours = message.campaigns.find((c) => c.id === campaign);
        // A live hello says where the feed starts; a replay's only names the recording's epoch.
        if (!feed.position.epoch && ours?.epoch) {
          feed.position = { epoch: ours.epoch, seq: mode === "live" ? ours.seq : 0 };
          onHello(ours);
        }
        break;
      }
      case "reset": // the campaign's arc line started over (a new campaign, a demo loop)
        if (message.campaign === campaign) {
          feed.position = { epoch: message.epoch, seq: 0 };
          onReset(message.epoch);
        }
        break;
      default: break; // types added later
    }
  }

  open(false);
  feed.send = (message) => {
    if (socket instanceof WebSocket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(message));
    }
  };
  feed.close = () => {
    closed = true;
    socket?.close();
  };
  return feed;
}

// The arcs of one message in the compact encoding (docs/browser-protocol.md, "Compact arcs";
// protocol/src/compact.rs is the reference): tables of strings and places, then the arcs.
export function decodeCompact(bytes) {
  let at = 0;
  const fail = (problem) => { throw new Error(`compact message, byte ${at}: ${problem}`); };
  const byte = () => (at < bytes.length ? bytes[at++] : fail("the message ends early"));
  // Varints up to 2^53 (JavaScript's exact integers): seqs, times and values stay below.
  const varint = () => {
    let n = 0;
    for (let scale = 1; ; scale *= 128) {
      const b = byte();
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      if (scale > 2 ** 49) fail("a number too long");
    }
  };
  const zigzag = () => {
    const n = varint();
    return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  };
  const utf8 = new TextDecoder();
  if (byte() !== 1) fail("not a message of arcs");
  let seq = varint();
  const tsBase = zigzag();
  const strings = [];
  for (let n = varint(); n > 0; n--) {
    const len = varint();
    if (at + len > bytes.length) fail("the message ends early");
    strings.push(utf8.decode(bytes.subarray(at, at + len)));
    at += len;
  }
  const string = (i) => (i < strings.length ? strings[i] : fail("a string index past the table"));
  const optional = (i) => (i === 0 ? undefined : string(i - 1));
  const places = [];
  for (let n = varint(); n > 0; n--) {
    const place = { lat: zigzag() / 1e6, lon: zigzag() / 1e6 };
    const [city, country] = [optional(varint()), optional(varint())];
    if (city !== undefined) place.city = city;
    if (country !== undefined) place.country = country;
    places.push(place);
  }
  const place = (i) => (i < places.length ? places[i] : fail("a place index past the table"));
  const arcs = [];
  for (let n = varint(); n > 0; n--) {
    seq += varint();
    const flags = byte();
    const kind = ["share", "click", "conversion"][flags & 3] ?? fail("an unknown kind");
    const arc = { seq, kind };
    arc.generation = varint();
    [arc.campaign, arc.share, arc.root, arc.channel] = [string(varint()), string(varint()), string(varint()), string(varint())];
    if (flags & 64) arc.sharer_kind = string(varint());
    arc.ts = tsBase + zigzag();
    if (flags & 4) arc.from = place(varint());
    arc.to = place(varint());
    if (flags & 8) arc.goal = string(varint());
    if (flags & 16) arc.value_cents = varint();
    if (flags & 32) arc.reach = varint();
    arcs.push(arc);
  }
  if (at !== bytes.length) fail("bytes after the last arc");
  return arcs;
}
