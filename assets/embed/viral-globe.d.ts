// Types of the <viral-globe> custom element (docs/embedding.md in the Viral Globe repository).

/** One arc of the live feed or a replay (docs/browser-protocol.md, "Arcs"). */
export interface Arc {
  seq: number;
  kind: "share" | "click" | "conversion";
  campaign: string;
  share: string;
  root: string;
  generation: number;
  channel: string;
  goal?: string;
  value_cents?: number;
  ts: number;
  from?: { lat: number; lon: number; city?: string; country?: string };
  to: { lat: number; lon: number; city?: string; country?: string };
  [field: string]: unknown;
}

/** A campaign's counters as the feed's `hello` gives them. */
export interface CampaignSummary {
  id: string;
  shares: number;
  clicks: number;
  conversions: number;
  goals: Record<string, number>;
  revenue_cents: number;
  max_generation: number;
  epoch?: string;
  seq: number;
  [field: string]: unknown;
}

export interface ViralGlobeEventMap {
  hello: CustomEvent<CampaignSummary>;
  arc: CustomEvent<Arc>;
  lagged: CustomEvent<{ dropped: number }>;
  reset: CustomEvent<{ epoch: string }>;
  refused: CustomEvent<{ status: number; message: string }>;
}

export interface ViralGlobeInfo {
  state: "idle" | "connecting" | "open" | "closed" | "refused";
  view: "globe" | "map";
  /** Arcs received, drawn (every one received), and left out by the server under `max-rate`. */
  arcs: number;
  drawn: number;
  skipped: number;
  shares: number;
  clicks: number;
  conversions: number;
  message: string | null;
}

/**
 * `<viral-globe server campaign token mode view max-rate palette auto-rotate hud>`.
 * Attributes are read when it connects; changing one reconnects it.
 */
export class ViralGlobe extends HTMLElement {
  info(): ViralGlobeInfo;
  addEventListener<K extends keyof ViralGlobeEventMap>(
    type: K,
    listener: (this: ViralGlobe, event: ViralGlobeEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | AddEventListenerOptions,
  ): void;
}

declare global {
  interface HTMLElementTagNameMap {
    "viral-globe": ViralGlobe;
  }
}
