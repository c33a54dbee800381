// Land and borders onto a 2D canvas, for the flat map and for the globe's texture alike.

// A ring's longitudes unwrapped: no step of more than 180°, so a ring that crosses the
// antimeridian runs past ±180 instead of jumping across the map (which, filled, drew a band of
// false land across the Arctic). A ring around a pole ends a whole turn from where it began: it is
// closed over the pole.
function unwrap(ring) {
  const out = [];
  let shift = 0;
  for (const [lon, lat] of ring) {
    const prev = out.length ? out[out.length - 1][0] : null;
    if (prev !== null) {
      const step = lon + shift - prev;
      if (step > 180) shift -= 360;
      else if (step < -180) shift += 360;
    }
    out.push([lon + shift, lat]);
  }
  if (out.length && Math.abs(out[out.length - 1][0] - out[0][0]) > 180) {
    const pole = out.reduce((sum, [, lat]) => sum + lat, 0) < 0 ? -90 : 90;
    out.push([out[out.length - 1][0], pole], [out[0][0], pole]);
  }
  return out;
}

// Traces `ring` where it shows: as it is, and a turn east or west for the part past ±180.
function traceRing(ctx, ring, project) {
  const points = unwrap(ring);
  const lons = points.map(([lon]) => lon);
  const [min, max] = [Math.min(...lons), Math.max(...lons)];
  for (const offset of [-360, 0, 360]) {
    if (max + offset < -180 || min + offset > 180) continue;
    points.forEach(([lon, lat], i) => {
      const [x, y] = project(lon + offset, lat);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.closePath();
  }
}

// Fills the land of `world` ({land, borders} of [lon, lat] rings) and strokes its borders, inside
// the map's rectangle `[x, y, width, height]`; `project(lon, lat)` gives canvas coordinates.
export function drawLand(ctx, world, project, [x, y, width, height], { land, border, borderWidth }) {
  ctx.save();
  ctx.beginPath();
  ctx.rect(x, y, width, height);
  ctx.clip();
  ctx.fillStyle = land;
  ctx.beginPath();
  for (const polygon of world.land) {
    for (const ring of polygon) traceRing(ctx, ring, project);
  }
  ctx.fill("evenodd");
  ctx.strokeStyle = border;
  ctx.lineWidth = borderWidth;
  ctx.beginPath();
  for (const line of world.borders) {
    line.forEach(([lon, lat], i) => {
      const [px, py] = project(lon, lat);
      if (i === 0) ctx.moveTo(px, py);
      else ctx.lineTo(px, py);
    });
  }
  ctx.stroke();
  ctx.restore();
}
