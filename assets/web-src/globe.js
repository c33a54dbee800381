// The page's 3D globe, drawn with three.js (WebGL): the dark Earth with Natural Earth land and
// borders, an atmosphere rim, and every arc in flight in one draw call — each arc is an instance
// of one line strip, animated in the vertex shader from its ends, colour and birth time (head,
// trail, fade), written into a ring of slots as it arrives. Drag to turn, scroll to zoom; it turns
// gently by itself. Bundled with three.js into ../web/globe.js by `npm run web` (see
// ../package.json); the server serves the bundle, so nothing is loaded from elsewhere.

import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { drawLand } from "../web/land.js";

const SLOTS = 20_000; // arcs in flight at most; the oldest slot is reused first
const SEGMENTS = 24; // line segments along one arc
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

const arcShader = {
  vertexShader: `
    attribute float t;
    attribute vec3 aFrom;
    attribute vec3 aTo;
    attribute float aBorn;
    attribute vec3 aColor;
    uniform float uNow;
    varying vec3 vColor;
    varying float vAlpha;
    void main() {
      float age = (uNow - aBorn) / ${TRAVEL_S.toFixed(2)};
      if (age < 0.0 || age > ${((TRAVEL_S + FADE_S) / TRAVEL_S).toFixed(4)}) {
        // Not in flight: off screen at once, none of the work below.
        vAlpha = 0.0;
        vColor = vec3(0.0);
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
        return;
      }
      float angle = acos(clamp(dot(aFrom, aTo), -1.0, 1.0));
      vec3 p = angle < 1e-4
        ? aTo
        : (sin((1.0 - t) * angle) * aFrom + sin(t * angle) * aTo) / sin(angle);
      // Lifted off the surface in proportion to its length.
      p *= 1.003 + 0.08 * angle * sin(3.14159265 * t);
      float head = clamp(age, 0.0, 1.0);
      float tail = clamp(age - 0.45, 0.0, 1.0);
      float fade = age <= 1.0 ? 1.0 : max(0.0, 1.0 - (age - 1.0) * ${(TRAVEL_S / FADE_S).toFixed(4)});
      float on = step(tail, t) * step(t, head) * step(1e-4, angle);
      vAlpha = on * fade * (0.35 + 0.65 * smoothstep(tail, head + 1e-3, t));
      vColor = aColor;
      gl_Position = projectionMatrix * modelViewMatrix * vec4(p, 1.0);
    }`,
  fragmentShader: `
    varying vec3 vColor;
    varying float vAlpha;
    void main() {
      if (vAlpha < 0.01) discard;
      gl_FragColor = vec4(vColor * vAlpha, 1.0);
    }`,
};

// The arcs: one instanced line strip, a slot per arc in flight.
function arcLayer() {
  const geometry = new THREE.InstancedBufferGeometry();
  const ts = new Float32Array(SEGMENTS * 2);
  for (let i = 0; i < SEGMENTS; i++) [ts[2 * i], ts[2 * i + 1]] = [i / SEGMENTS, (i + 1) / SEGMENTS];
  geometry.setAttribute("t", new THREE.BufferAttribute(ts, 1));
  // three needs a position attribute to count vertices; the shader computes the real ones.
  geometry.setAttribute("position", new THREE.BufferAttribute(new Float32Array(SEGMENTS * 6), 3));
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
    blending: THREE.AdditiveBlending,
  });
  const lines = new THREE.LineSegments(geometry, material);
  lines.frustumCulled = false;
  let next = 0;
  let dirty = null; // [first, last] slots written since the last upload
  const born = [];  // birth times of the most recent arcs, to count those in flight
  return {
    object: lines,
    material,
    add(arc, color, now) {
      born.push(now);
      const i = next % SLOTS;
      next++;
      const to = toVec(arc.to.lat, arc.to.lon);
      const from = arc.from ? toVec(arc.from.lat, arc.from.lon) : to;
      attributes.aFrom.array.set([from.x, from.y, from.z], i * 3);
      attributes.aTo.array.set([to.x, to.y, to.z], i * 3);
      attributes.aBorn.array[i] = now;
      attributes.aColor.array.set([color.r, color.g, color.b], i * 3);
      dirty = dirty ? [Math.min(dirty[0], i), Math.max(dirty[1], i)] : [i, i];
      geometry.instanceCount = Math.min(next, SLOTS);
    },
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
      dirty = [0, SLOTS - 1];
      born.length = 0;
    },
    // Arcs still drawn at `now` (at most the slots).
    inFlight(now) {
      let gone = 0;
      while (gone < born.length && now - born[gone] > TRAVEL_S + FADE_S) gone++;
      born.splice(0, gone);
      if (born.length > SLOTS) born.splice(0, born.length - SLOTS);
      return born.length;
    },
  };
}

// Builds the globe in `container` (a canvas of its own) for `world`; `colorOf(arc)` gives an
// arc's CSS colour.
export function createGlobe(container, world, colorOf) {
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
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
  const arcs = arcLayer();
  scene.add(arcs.object);
  const started = performance.now();
  const clock = { getElapsedTime: () => (performance.now() - started) / 1_000 };
  const colors = new Map();
  const colorFor = (css) => {
    if (!colors.has(css)) colors.set(css, new THREE.Color(css));
    return colors.get(css);
  };

  function resize() {
    const { width, height } = container.getBoundingClientRect();
    renderer.setSize(Math.max(1, width), Math.max(1, height), false);
    camera.aspect = Math.max(1, width) / Math.max(1, height);
    camera.updateProjectionMatrix();
  }
  resize();

  return {
    canvas: renderer.domElement,
    resize,
    add(arc) {
      arcs.add(arc, colorFor(colorOf(arc)), clock.getElapsedTime());
    },
    clear: () => arcs.clear(),
    draw() {
      controls.update();
      arcs.material.uniforms.uNow.value = clock.getElapsedTime();
      arcs.upload();
      renderer.render(scene, camera);
    },
    // For tests and debugging.
    info: () => ({
      webgl: renderer.capabilities.isWebGL2 ? "webgl2" : "webgl",
      inFlight: arcs.inFlight(clock.getElapsedTime()),
      azimuth: controls.getAzimuthalAngle(),
      distance: camera.position.length(),
      drawCalls: renderer.info.render.calls,
    }),
  };
}
