// Converts Natural Earth geography (world-atlas, 1:50m) into the compact asset the browser page
// and the viewer load: land polygons and country borders as arrays of [lon, lat] rings, rounded to
// 0.01° (about 1 km, finer than any pixel of a globe). Run once: `npm ci && npm run world`.
import { readFileSync, writeFileSync } from "node:fs";
import { feature, mesh } from "topojson-client";

const source = (name) =>
  JSON.parse(readFileSync(new URL(`../node_modules/world-atlas/${name}`, import.meta.url)));
const round = (ring) => ring.map(([lon, lat]) => [Math.round(lon * 100) / 100, Math.round(lat * 100) / 100]);

const land = feature(source("land-50m.json"), "land");
const polygons = land.features.flatMap((f) =>
  f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates,
);
const countries = source("countries-50m.json");
const borders = mesh(countries, countries.objects.countries, (a, b) => a !== b);

const world = {
  source: "Natural Earth 1:50m (public domain), via world-atlas 2.0.2",
  land: polygons.map((rings) => rings.map(round)),
  borders: borders.coordinates.map(round),
};
writeFileSync(new URL("./world-50m.json", import.meta.url), JSON.stringify(world));
console.log(`land polygons: ${world.land.length}, border lines: ${world.borders.length}`);
