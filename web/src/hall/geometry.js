// Pure hall geometry: the walkable polygon, distances to booths, LOD choice. No three.js, no DOM.
//
// Hall space (docs/manifest.md "Coordinates"): metres, y up, z towards the entrance; the walkable
// polygon is [[x, z], ...], counter-clockwise seen from above.

// LOD0 within 8 m, LOD1 within 25 m, LOD2 beyond (docs/manifest.md "Far boxes and loading").
export const LOD_DISTANCES = [8, 25];
// A booth must come this much closer than a threshold to get finer, or go this much further to
// get coarser: a visitor standing on a threshold does not make the booth reload every frame.
export const LOD_HYSTERESIS = 2;

/** True when (x, z) lies inside the polygon (even-odd rule; points on an edge may go either way). */
export function insidePolygon(polygon, x, z) {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, zi] = polygon[i];
    const [xj, zj] = polygon[j];
    if (zi > z !== zj > z && x < ((xj - xi) * (z - zi)) / (zj - zi) + xi) inside = !inside;
  }
  return inside;
}

function closestOnSegment(ax, az, bx, bz, x, z) {
  const dx = bx - ax;
  const dz = bz - az;
  const length2 = dx * dx + dz * dz;
  const t = length2 > 0 ? Math.min(1, Math.max(0, ((x - ax) * dx + (z - az) * dz) / length2)) : 0;
  return [ax + t * dx, az + t * dz];
}

/**
 * The point of the polygon nearest to (x, z): (x, z) itself when inside, otherwise the nearest
 * point of its boundary pulled `inset` metres towards the polygon's inside.
 */
export function clampToPolygon(polygon, x, z, inset = 0.05) {
  if (!polygon || polygon.length < 3 || insidePolygon(polygon, x, z)) return [x, z];
  let best = null;
  let bestD2 = Infinity;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [px, pz] = closestOnSegment(...polygon[j], ...polygon[i], x, z);
    const d2 = (px - x) ** 2 + (pz - z) ** 2;
    if (d2 < bestD2) [best, bestD2] = [[px, pz], d2];
  }
  const d = Math.sqrt(bestD2) || 1;
  // Pull the boundary point inwards, along the direction from the outside point to it.
  const candidate = [best[0] + ((best[0] - x) / d) * inset, best[1] + ((best[1] - z) / d) * inset];
  return insidePolygon(polygon, ...candidate) ? candidate : best;
}

/**
 * Where a walk from `from` towards `to` ends when it must stay inside the polygon: `to` when it
 * is inside, else the move along x only or z only (sliding along a wall), else `from`.
 */
export function slideInside(polygon, from, to) {
  if (!polygon || polygon.length < 3 || insidePolygon(polygon, to[0], to[1])) return to;
  if (insidePolygon(polygon, to[0], from[1])) return [to[0], from[1]];
  if (insidePolygon(polygon, from[0], to[1])) return [from[0], to[1]];
  return from;
}

/** Horizontal distance from (x, z) to a booth's bounds (0 inside the footprint). */
export function distanceToBounds(bounds, x, z) {
  const dx = Math.max(bounds.min[0] - x, 0, x - bounds.max[0]);
  const dz = Math.max(bounds.min[2] - z, 0, z - bounds.max[2]);
  return Math.hypot(dx, dz);
}

/**
 * The LOD a booth at `distance` metres should show, given the LOD it shows now (null: none yet).
 * Thresholds move by LOD_HYSTERESIS away from the current LOD.
 */
export function chooseLod(distance, current = null) {
  let lod = 0;
  for (const [i, threshold] of LOD_DISTANCES.entries()) {
    let edge = threshold;
    // Finer than this threshold is LOD i, coarser is LOD i + 1.
    if (current !== null && current <= i) edge += LOD_HYSTERESIS;
    else if (current !== null && current > i) edge -= LOD_HYSTERESIS;
    if (distance > edge) lod = i + 1;
  }
  return lod;
}

/** Radians from the manifest's degrees (yaws and booth rotations, counter-clockwise about +y). */
export function degrees(value) {
  return (value * Math.PI) / 180;
}

/** The unit vector a yaw (radians, 0 looks towards -z, counter-clockwise) looks along: [x, z]. */
export function forward(yaw) {
  return [-Math.sin(yaw), -Math.cos(yaw)];
}
