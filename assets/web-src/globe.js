// The page's 3D globe, drawn with three.js (WebGL): the dark Earth with Natural Earth land and
// borders, an atmosphere rim, the light of recent landings (`densityLayer`), and every arc in
// flight in one draw call — each arc is an instance
// of one set of line segments (its path and a ring), animated in the vertex shader from its ends,
// colour and birth time (head, trail, landing ring, fade; a campaign post is a pulse), written
// into a ring of slots as it arrives. Drag to turn, scroll to zoom; left alone it follows the
// action (where the latest arcs land), or turns gently when nothing happens. Hover or tap an arc
// for what it is (`pick`). Bundled with three.js into ../embed/viral-globe.js by `npm run embed` (see
// ../package.json); the server serves the bundle, so nothing is loaded from elsewhere.

import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { drawLand } from "../web/land.js";

const SLOTS = 20_000; // slots for arcs in flight; the oldest slot is reused first
// Arcs drawn in flight at most (the viewer's --max-arcs, for a browser's frame budget): when it is
// full a new click is left out (counted, not drawn), and a new share or conversion takes the place
// of the oldest click in flight — they are drawn whenever they alone fit.
const BUDGET = 2_000;
const SEGMENTS = 24; // line segments along one arc
const RING_SEGMENTS = 16; // line segments of its landing ring
const FOLLOW_AFTER_S = 6; // left alone this long, the camera follows the action
const TRAVEL_S = 1.4; // an arc's head travels for this long
const FADE_S = 1.6; // then its trail fades for this long

// A place on the unit sphere, in the frame of three's SphereGeometry (its texture's u = 0 at
// 180°W, v = 1 at the North Pole).
function toVec(lat, lon) {
  const [φ, λ] = [(lat * Math.PI) / 180, (lon * Math.PI) / 180];
  return new THREE.Vector3(Math.cos(φ) * Math.cos(λ), Math.sin(φ), -Math.cos(φ) * Math.sin(λ));
}

function earthTexture(world) {
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [2048, 1024];
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#0a1222";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const project = (lon, lat) => [((lon + 180) / 360) * canvas.width, ((90 - lat) / 180) * canvas.height];
  drawLand(ctx, world, project, [0, 0, canvas.width, canvas.height], { land: "#1a2744", border: "#2f4170", borderWidth: 1.2 });
  const texture = new THREE.CanvasTexture(canvas);
  texture.colorSpace = THREE.SRGBColorSpace;
  return texture;
}

const atmosphereShader = {
  vertexShader: `
    varying vec3 vNormal;
    void main() {
      vNormal = normalize(normalMatrix * normal);
      gl_Position = projectionMatrix * modelViewMatrix * vec4(position, 1.0);
    }`,
  fragmentShader: `
    varying vec3 vNormal;
    void main() {
      float rim = pow(clamp(0.72 - dot(vNormal, vec3(0.0, 0.0, 1.0)), 0.0, 1.0), 3.0);
      gl_FragColor = vec4(0.35, 0.62, 1.0, 1.0) * rim * 1.6;
    }`,
};

const LIFE = ((TRAVEL_S + FADE_S) / TRAVEL_S).toFixed(4); // an arc's life, in travel times

// The density layer, by the viewer's rules (viewer/src/globe/density.rs): every landing, drawn or
// left out by the budget, adds light to half-degree cells — its own and, by a Gaussian, those up
// to two around — and the light fades to a third in 4 s, so a peak reads as glowing clusters of
// dots (city lights from space), not as a haze of lines.
const GRID = [720, 360]; // cells around the globe, and from pole to pole
const LIGHT_FADE_S = 4;
const SATURATION = 30; // landings within the fade that light a cell to 63%
const SIGMA = 1.2; // the spread of a landing's light, in cells
const LIGHT = [1.0, 0.86, 0.62]; // warm white

const densityShader = {
  vertexShader: `
    varying vec2 vUv;
    void main() {
      vUv = uv;
      gl_Position = projectionMatrix * modelViewMatrix * vec4(position, 1.0);
    }`,
  fragmentShader: `
    uniform sampler2D uHeat;
    varying vec2 vUv;
    const vec2 GRID = vec2(${GRID[0].toFixed(1)}, ${GRID[1].toFixed(1)});
    void main() {
      // Cells by longitude from 180°W and by latitude from the North Pole (three's v is 1 there).
      vec2 at = vec2(vUv.x, 1.0 - vUv.y) * GRID;
      vec2 cell = min(floor(at), GRID - 1.0);
      float light = texture2D(uHeat, (cell + 0.5) / GRID).r;
      if (light < 0.004) discard;
      // A round dot a cell; where cells are smaller than a couple of pixels, their average.
      float d = length(fract(at) - 0.5) * 2.0;
      float dot = 1.0 - smoothstep(0.5, 0.85, d);
      dot = mix(dot, 0.4, smoothstep(0.35, 0.7, max(fwidth(at.x), fwidth(at.y))));
      gl_FragColor = vec4(vec3(${LIGHT.map((c) => c.toFixed(2)).join(", ")}) * light * dot * 1.6, 1.0);
    }`,
};

// The density layer: the heat grid on the CPU, shown on a shell just above the surface as one
// byte a cell, uploaded only while some light shows.
function densityLayer() {
  const [width, height] = GRID;
  const heat = new Float32Array(width * height);
  const bytes = new Uint8Array(width * height);
  const texture = new THREE.DataTexture(bytes, width, height, THREE.RedFormat, THREE.UnsignedByteType);
  texture.magFilter = texture.minFilter = THREE.NearestFilter;
  const material = new THREE.ShaderMaterial({
    ...densityShader,
    uniforms: { uHeat: { value: texture } },
    transparent: true,
    depthWrite: false,
    blending: THREE.AdditiveBlending,
  });
  const object = new THREE.Mesh(new THREE.SphereGeometry(1.0012, 128, 64), material);
  let lit = true; // whether the texture may show light (shown once more after it goes dark)
  let lastFade = null;
  return {
    object,
    land(lat, lon) {
      lit = true;
      const column = Math.min(width - 1, Math.floor(((lon + 180) / 360) * width));
      const row = Math.min(height - 1, Math.floor(((90 - lat) / 180) * height));
      for (let dy = -2; dy <= 2; dy++) {
        const y = row + dy;
        if (y < 0 || y >= height) continue;
        for (let dx = -2; dx <= 2; dx++) {
          if (dx * dx + dy * dy > 5) continue; // a disc, not a square
          const x = (column + dx + width) % width;
          heat[y * width + x] += Math.exp(-(dx * dx + dy * dy) / (2 * SIGMA * SIGMA));
        }
      }
    },
    // Fades the light by the time since the last frame and uploads it.
    fade(now) {
      const elapsed = lastFade === null ? 0 : now - lastFade;
      lastFade = now;
      if (!lit) return;
      const keep = Math.exp(-elapsed / LIGHT_FADE_S);
      let any = false;
      for (let i = 0; i < heat.length; i++) {
        let h = heat[i];
        if (h === 0) {
          bytes[i] = 0;
          continue;
        }
        h *= keep;
        if (h < 0.01) h = 0;
        heat[i] = h;
        any ||= h > 0;
        bytes[i] = 255 * (1 - Math.exp(-h / SATURATION));
      }
      texture.needsUpdate = true;
      lit = any;
    },
    clear() {
      heat.fill(0);
      lit = true;
    },
    // Cells showing light now.
    litCells() {
      let n = 0;
      for (const b of bytes) if (b > 0) n++;
      return n;
    },
  };
}

const arcShader = {
  vertexShader: `
    attribute float t;     // along the arc, or around the ring
    attribute float ring;  // 0: the arc's path; 1: its ring
    attribute vec3 aFrom;
    attribute vec3 aTo;
    attribute float aBorn;
    attribute vec3 aColor;
    uniform float uNow;
    varying vec3 vColor;
    varying float vAlpha;
    void main() {
      float age = (uNow - aBorn) / ${TRAVEL_S.toFixed(2)};
      float angle = acos(clamp(dot(aFrom, aTo), -1.0, 1.0));
      bool post = angle < 1e-4; // a campaign post: a pulse where it was posted, no path
      // Not drawn now: off screen at once, none of the work below.
      bool off = age < 0.0 || age > ${LIFE} || (ring < 0.5 && post) || (ring > 0.5 && !post && age < 1.0);
      if (off) {
        vAlpha = 0.0;
        vColor = vec3(0.0);
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
        return;
      }
      float fade = age <= 1.0 ? 1.0 : max(0.0, 1.0 - (age - 1.0) * ${(TRAVEL_S / FADE_S).toFixed(4)});
      vec3 p;
      if (ring > 0.5) {
        // The ring spreads from where the arc landed (a post's pulse, wider, from its start).
        float spread = post ? age / ${LIFE} : (age - 1.0) / (${LIFE} - 1.0);
        float radius = post ? 0.006 + 0.05 * spread : 0.003 + 0.022 * spread;
        vec3 side = normalize(cross(aTo, abs(aTo.y) < 0.9 ? vec3(0.0, 1.0, 0.0) : vec3(1.0, 0.0, 0.0)));
        vec3 up = cross(aTo, side);
        float around = 6.2831853 * t;
        p = normalize(aTo + radius * (cos(around) * side + sin(around) * up)) * 1.002;
        vAlpha = (post ? 1.0 - spread : fade) * 0.9;
      } else {
        p = (sin((1.0 - t) * angle) * aFrom + sin(t * angle) * aTo) / sin(angle);
        // Lifted off the surface in proportion to its length, as the viewer lifts it (at most
        // 0.145 of the radius, for the far side of the world), so no arc loops far off the disc.
        p *= 1.003 + (0.015 + 0.13 * angle / 3.14159265) * sin(3.14159265 * t);
        float head = clamp(age, 0.0, 1.0);
        float tail = clamp(age - 0.45, 0.0, 1.0);
        float on = step(tail, t) * step(t, head);
        vAlpha = on * fade * (0.35 + 0.65 * smoothstep(tail, head + 1e-3, t));
      }
      // Fading as it goes round the limb, instead of crossing the disc over the near side.
      vec3 world = (modelMatrix * vec4(p, 1.0)).xyz;
      vAlpha *= smoothstep(-0.05, 0.25, dot(normalize(world), normalize(cameraPosition - world)));
      vColor = aColor;
      gl_Position = projectionMatrix * modelViewMatrix * vec4(p, 1.0);
    }`,
  fragmentShader: `
    varying vec3 vColor;
    varying float vAlpha;
    void main() {
      if (vAlpha < 0.01) discard;
      gl_FragColor = vec4(vColor, vAlpha);
    }`,
};

// The arcs: one instanced set of line segments (the path, then the ring), a slot per arc in flight.
function arcLayer() {
  const geometry = new THREE.InstancedBufferGeometry();
  const vertices = 2 * (SEGMENTS + RING_SEGMENTS);
  const [ts, rings] = [new Float32Array(vertices), new Float32Array(vertices)];
  for (let i = 0; i < SEGMENTS + RING_SEGMENTS; i++) {
    const [ring, n, k] = i < SEGMENTS ? [0, SEGMENTS, i] : [1, RING_SEGMENTS, i - SEGMENTS];
    [ts[2 * i], ts[2 * i + 1]] = [k / n, (k + 1) / n];
    rings[2 * i] = rings[2 * i + 1] = ring;
  }
  geometry.setAttribute("t", new THREE.BufferAttribute(ts, 1));
  geometry.setAttribute("ring", new THREE.BufferAttribute(rings, 1));
  // three needs a position attribute to count vertices; the shader computes the real ones.
  geometry.setAttribute("position", new THREE.BufferAttribute(new Float32Array(vertices * 3), 3));
  const slot = (size) => new THREE.InstancedBufferAttribute(new Float32Array(SLOTS * size), size).setUsage(THREE.DynamicDrawUsage);
  const attributes = { aFrom: slot(3), aTo: slot(3), aBorn: slot(1), aColor: slot(3) };
  for (const [name, attribute] of Object.entries(attributes)) geometry.setAttribute(name, attribute);
  attributes.aBorn.array.fill(-1e9);
  geometry.instanceCount = 0;
  const material = new THREE.ShaderMaterial({
    ...arcShader,
    uniforms: { uNow: { value: 0 } },
    transparent: true,
    depthWrite: false,
    // Blended over what is behind, not added: thousands of crossing arcs keep their colours
    // instead of adding up to white.
    blending: THREE.NormalBlending,
  });
  const lines = new THREE.LineSegments(geometry, material);
  lines.frustumCulled = false;
  let next = 0;
  let dirty = null; // [first, last] slots written since the last upload
  const drawn = []; // {end, slot, click} of each arc drawn now, oldest first (time order)
  let skipped = 0; // clicks left out (or taken off) by the budget
  const arcs = new Array(SLOTS).fill(null); // each slot's arc, for `pick`
  const alive = (i, now) => arcs[i] && now - attributes.aBorn.array[i] <= TRAVEL_S + FADE_S;
  // A point of slot i's arc at `t` (0 its start, 1 where it lands), lifted as the shader lifts it.
  const pointOf = (i, t, out) => {
    const [f, d] = [attributes.aFrom.array, attributes.aTo.array];
    const from = new THREE.Vector3(f[3 * i], f[3 * i + 1], f[3 * i + 2]);
    const to = new THREE.Vector3(d[3 * i], d[3 * i + 1], d[3 * i + 2]);
    const angle = from.angleTo(to);
    if (angle < 1e-4) return out.copy(to);
    out.copy(from).multiplyScalar(Math.sin((1 - t) * angle)).addScaledVector(to, Math.sin(t * angle)).divideScalar(Math.sin(angle));
    return out.multiplyScalar(1.003 + (0.015 + (0.13 * angle) / Math.PI) * Math.sin(Math.PI * t));
  };
  return {
    object: lines,
    material,
    // Draws `arc` unless it is a click and the budget is full; whether it was drawn.
    add(arc, color, now) {
      while (drawn.length > 0 && drawn[0].end <= now) drawn.shift();
      const click = arc.kind === "click";
      if (drawn.length >= BUDGET) {
        const oldestClick = click ? -1 : drawn.findIndex((d) => d.click);
        if (oldestClick < 0) {
          skipped++;
          return false;
        }
        const [gone] = drawn.splice(oldestClick, 1);
        attributes.aBorn.array[gone.slot] = -1e9;
        arcs[gone.slot] = null;
        dirty = dirty ? [Math.min(dirty[0], gone.slot), Math.max(dirty[1], gone.slot)] : [gone.slot, gone.slot];
        skipped++;
      }
      const i = next % SLOTS;
      drawn.push({ end: now + TRAVEL_S + FADE_S, slot: i, click });
      next++;
      arcs[i] = arc;
      const to = toVec(arc.to.lat, arc.to.lon);
      const from = arc.from ? toVec(arc.from.lat, arc.from.lon) : to;
      attributes.aFrom.array.set([from.x, from.y, from.z], i * 3);
      attributes.aTo.array.set([to.x, to.y, to.z], i * 3);
      attributes.aBorn.array[i] = now;
      attributes.aColor.array.set([color.r, color.g, color.b], i * 3);
      dirty = dirty ? [Math.min(dirty[0], i), Math.max(dirty[1], i)] : [i, i];
      geometry.instanceCount = Math.min(next, SLOTS);
      return true;
    },
    skipped: () => skipped,
    upload() {
      if (!dirty) return;
      const [first, last] = dirty;
      for (const attribute of Object.values(attributes)) {
        attribute.clearUpdateRanges();
        attribute.addUpdateRange(first * attribute.itemSize, (last - first + 1) * attribute.itemSize);
        attribute.needsUpdate = true;
      }
      dirty = null;
    },
    clear() {
      attributes.aBorn.array.fill(-1e9);
      arcs.fill(null);
      drawn.length = 0;
      dirty = [0, SLOTS - 1];
    },
    // How far above the surface, in radii, the highest point of any arc drawn at `now` stands.
    highest(now) {
      let top = 0;
      const point = new THREE.Vector3();
      for (let i = 0; i < Math.min(next, SLOTS); i++) {
        if (!alive(i, now)) continue;
        for (let k = 0; k <= SEGMENTS; k++) top = Math.max(top, pointOf(i, k / SEGMENTS, point).length() - 1);
      }
      return top;
    },
    // Arcs drawn at `now`.
    inFlight(now) {
      let n = 0;
      for (let i = 0; i < Math.min(next, SLOTS); i++) if (alive(i, now)) n++;
      return n;
    },
    // The arc drawn nearest to `at` on screen (points of its drawn part on the side of the globe
    // facing the camera), within `within` pixels; `toScreen(point)` gives a point's pixel.
    pick(at, within, now, camera, toScreen) {
      let best = null;
      const point = new THREE.Vector3();
      for (let i = 0; i < Math.min(next, SLOTS); i++) {
        if (!alive(i, now)) continue;
        const head = Math.min(1, (now - attributes.aBorn.array[i]) / TRAVEL_S);
        for (const t of [head, head * 0.75, head * 0.5]) {
          pointOf(i, t, point);
          if (point.dot(camera.position) < point.lengthSq()) continue; // behind the Earth
          const [x, y] = toScreen(point);
          const distance = Math.hypot(x - at[0], y - at[1]);
          if (distance <= within && (!best || distance < best.distance)) best = { arc: arcs[i], distance, x, y };
        }
      }
      return best;
    },
    // The newest arc drawn now that has landed, and where (for tests).
    newestLanded(now) {
      for (let k = 1; k <= Math.min(next, SLOTS); k++) {
        const i = (next - k) % SLOTS;
        if (alive(i, now) && now - attributes.aBorn.array[i] >= TRAVEL_S) {
          return { arc: arcs[i], landing: pointOf(i, 1, new THREE.Vector3()) };
        }
      }
      return null;
    },
  };
}

// Whether WebGL runs on the CPU (SwiftShader, llvmpipe). Multisampling is nearly free on a GPU
// but doubles a software renderer's frame (1.3 s against 0.6 s with 20,000 arcs in flight here).
function softwareRendering() {
  const gl = document.createElement("canvas").getContext("webgl2");
  const info = gl?.getExtension("WEBGL_debug_renderer_info");
  const name = info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : "";
  gl?.getExtension("WEBGL_lose_context")?.loseContext();
  return /swiftshader|llvmpipe|softpipe|software/i.test(name);
}

// Builds the globe in `container` (a canvas of its own) for `world`; `colorOf(arc)` gives an
// arc's CSS colour, `weightOf(arc)` how much it draws the camera (0 for none). `autoRotate: false`
// leaves it still when nothing happens.
export function createGlobe(container, world, colorOf, weightOf, { autoRotate = true } = {}) {
  const renderer = new THREE.WebGLRenderer({ antialias: !softwareRendering(), preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(2, window.devicePixelRatio || 1));
  renderer.domElement.dataset.testid = "globe";
  container.append(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color("#05070d");
  const camera = new THREE.PerspectiveCamera(38, 1, 0.1, 100);
  camera.position.copy(toVec(25, -75).multiplyScalar(3.3));
  const controls = new OrbitControls(camera, renderer.domElement);
  Object.assign(controls, {
    enableDamping: true, enablePan: false, minDistance: 1.35, maxDistance: 8,
    autoRotate: true, autoRotateSpeed: 0.25, rotateSpeed: 0.5,
  });
  scene.add(new THREE.Mesh(new THREE.SphereGeometry(1, 128, 64), new THREE.MeshBasicMaterial({ map: earthTexture(world) })));
  scene.add(new THREE.Mesh(new THREE.SphereGeometry(1.08, 64, 32), new THREE.ShaderMaterial({
    ...atmosphereShader, side: THREE.BackSide, transparent: true, depthWrite: false, blending: THREE.AdditiveBlending,
  })));
  const density = densityLayer();
  scene.add(density.object);
  const arcs = arcLayer();
  scene.add(arcs.object);
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1_000;
  const colors = new Map();
  const colorFor = (css) => {
    if (!colors.has(css)) colors.set(css, new THREE.Color(css));
    return colors.get(css);
  };
  // Following the action: where recent arcs land, weighted, fading (a sum that decays per arc).
  const action = new THREE.Vector3();
  let touched = -Infinity; // when a person last turned or zoomed it
  let hovering = false;
  let following = false;
  controls.addEventListener("start", () => (touched = seconds()));
  renderer.domElement.addEventListener("pointerenter", () => (hovering = true));
  renderer.domElement.addEventListener("pointerleave", () => (hovering = false));

  function resize() {
    const { width, height } = container.getBoundingClientRect();
    renderer.setSize(Math.max(1, width), Math.max(1, height), false);
    camera.aspect = Math.max(1, width) / Math.max(1, height);
    camera.updateProjectionMatrix();
  }
  resize();
  // The container changes size with the page's layout too (the panel filling in), not only with
  // the window: the drawing follows, or it would be stretched.
  const resizes = new ResizeObserver(resize);
  resizes.observe(container);

  // A point's pixel in the canvas (CSS pixels from its top left).
  const toScreen = (point) => {
    const p = point.clone().project(camera);
    const { width, height } = renderer.domElement.getBoundingClientRect();
    return [((p.x + 1) / 2) * width, ((1 - p.y) / 2) * height];
  };

  // Left alone, the camera turns towards the action; while a person hovers it stays still.
  function steer() {
    following = seconds() - touched > FOLLOW_AFTER_S && action.length() > 1 && !hovering;
    controls.autoRotate = autoRotate && !following && !hovering && seconds() - touched > FOLLOW_AFTER_S;
    if (!following) return;
    const distance = camera.position.length();
    const direction = camera.position.clone().normalize().lerp(action.clone().normalize(), 0.01).normalize();
    camera.position.copy(direction.multiplyScalar(distance));
  }

  return {
    canvas: renderer.domElement,
    resize,
    add(arc) {
      arcs.add(arc, colorFor(colorOf(arc)), seconds());
      density.land(arc.to.lat, arc.to.lon);
      // Drawn or left out by the budget, every landing draws the camera.
      const weight = weightOf(arc);
      if (weight > 0) action.multiplyScalar(0.98).addScaledVector(toVec(arc.to.lat, arc.to.lon), weight);
    },
    clear() {
      arcs.clear();
      density.clear();
      action.set(0, 0, 0);
    },
    // Lets go of the canvas and its GPU memory (an embedded globe taken off its page).
    dispose() {
      resizes.disconnect();
      controls.dispose();
      renderer.dispose();
      renderer.domElement.remove();
    },
    draw() {
      steer();
      controls.update();
      arcs.material.uniforms.uNow.value = seconds();
      arcs.upload();
      density.fade(seconds());
      renderer.render(scene, camera);
    },
    // The arc under a pointer at CSS pixel `at` of the canvas, if one is within reach.
    pick: (at) => arcs.pick(at, 14, seconds(), camera, toScreen)?.arc ?? null,
    // For tests and debugging.
    info: () => ({
      webgl: renderer.capabilities.isWebGL2 ? "webgl2" : "webgl",
      antialias: renderer.getContextAttributes().antialias,
      inFlight: arcs.inFlight(seconds()),
      budget: BUDGET,
      skipped: arcs.skipped(),
      // Counted when read (by tests), not every frame.
      get litCells() {
        return density.litCells();
      },
      get highestArc() {
        return arcs.highest(seconds());
      },
      azimuth: controls.getAzimuthalAngle(),
      distance: camera.position.length(),
      drawCalls: renderer.info.render.calls,
      following,
    }),
    // Where the newest arc that has landed is on screen, if on the side facing the camera.
    newestOnScreen() {
      const newest = arcs.newestLanded(seconds());
      if (!newest || newest.landing.dot(camera.position) < 1) return null;
      const [x, y] = toScreen(newest.landing);
      return { arc: newest.arc, x, y };
    },
  };
}
