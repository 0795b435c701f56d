// @ts-check
// Geohashes, computed in the browser so that a position never leaves it:
// only the cell (a rough area) goes to the vault with a wish.
//
// A geohash halves the longitude and latitude ranges in turn and writes the
// bits five at a time in base 32; every character added narrows the cell,
// and cutting characters off gives the larger cells that contain it.

const BASE32 = '0123456789bcdefghjkmnpqrstuvwxyz';

/** The finest cell the vault accepts (about 150 m across). */
export const MAX_PRECISION = 7;

/** Characters a geohash may hold (the alphabet has no a, i, l or o). */
export const GEOHASH_PATTERN = /^[0-9b-hjkmnp-z]+$/;

/**
 * The geohash of a point with `precision` characters.
 *   encode(57.64911, 10.40744, 5) -> "u4pru"
 */
export function encode(latitude, longitude, precision = MAX_PRECISION) {
  const lat = [-90, 90];
  const lon = [-180, 180];
  let hash = '';
  let bits = 0;
  let value = 0;
  let evenBit = true; // longitude first
  while (hash.length < precision) {
    const range = evenBit ? lon : lat;
    const coordinate = evenBit ? longitude : latitude;
    const middle = (range[0] + range[1]) / 2;
    value <<= 1;
    if (coordinate >= middle) {
      value |= 1;
      range[0] = middle;
    } else {
      range[1] = middle;
    }
    evenBit = !evenBit;
    bits += 1;
    if (bits === 5) {
      hash += BASE32[value];
      bits = 0;
      value = 0;
    }
  }
  return hash;
}
