//! Places: geohash cells (encoded and decoded by the `geohash` crate), distances on a spherical
//! Earth, and the cell coverings the subscription index buckets areas by.
//!
//! An intent's place is a cell plus a radius: every point within `radius_m` of the cell. A
//! subscription area is a cell or a circle. Whether the two meet is decided exactly on the sphere
//! (closest distance between a point or cell and a cell, by haversine), with a centimetre of slack
//! so rounding can only add matches, never lose one. Longitudes are compared modulo 360° and spans
//! that reach a pole take every longitude, so places meet across the antimeridian too (one test
//! near Fiji); near the poles it is untested, as no place the vault expects comes near them.

use serde::{Deserialize, Serialize};

/// The finest geohash an intent or area may use: 7 characters, a cell of about 150 m × 150 m. A
/// finer one would pinpoint the person's door.
pub const MAX_PRECISION: usize = 7;
/// Mean Earth radius (IUGG), the sphere every distance here is measured on.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// Added to every distance comparison so that floating-point rounding never drops a true match.
const SLACK_M: f64 = 0.01;
/// Relative and absolute widening of computed spans, for the same reason.
const SPAN_SLACK_REL: f64 = 1e-9;
const SPAN_SLACK_DEG: f64 = 1e-9;

/// The geohash alphabet: base 32 without a, i, l and o.
const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidGeohash {
    #[error("a geohash must not be empty")]
    Empty,
    #[error(
        "a geohash of {0} characters is too precise; use at most {MAX_PRECISION} (a cell of about 150 m)"
    )]
    TooFine(usize),
    #[error("{0:?} is not a geohash character (0-9 and lowercase b-z without i, l and o)")]
    Character(char),
    #[error("latitude must be between -90 and 90 and longitude between -180 and 180")]
    OutOfRange,
}

/// A geohash of 1 to [`MAX_PRECISION`] characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Geohash(String);

impl Geohash {
    pub fn parse(text: &str) -> Result<Geohash, InvalidGeohash> {
        if let Some(c) = text
            .chars()
            .find(|c| !c.is_ascii() || !ALPHABET.contains(&(*c as u8)))
        {
            return Err(InvalidGeohash::Character(c));
        }
        match text.len() {
            0 => Err(InvalidGeohash::Empty),
            n if n > MAX_PRECISION => Err(InvalidGeohash::TooFine(n)),
            _ => Ok(Geohash(text.to_owned())),
        }
    }

    /// The cell of `precision` characters holding a point.
    pub fn encode(lat: f64, lon: f64, precision: usize) -> Result<Geohash, InvalidGeohash> {
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Err(InvalidGeohash::OutOfRange);
        }
        if precision == 0 {
            return Err(InvalidGeohash::Empty);
        }
        if precision > MAX_PRECISION {
            return Err(InvalidGeohash::TooFine(precision));
        }
        // The crate wraps an exact 90° or 180° around to the opposite edge; the top row and
        // the antimeridian's western twin are where those points belong.
        let lat = if lat >= 90.0 { 90.0 - 1e-9 } else { lat };
        let lon = if lon >= 180.0 { -180.0 } else { lon };
        geohash::encode(geohash::Coord { x: lon, y: lat }, precision)
            .map(Geohash)
            .map_err(|_| InvalidGeohash::OutOfRange)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn precision(&self) -> usize {
        self.0.len()
    }

    /// The cell's bounds.
    pub fn bbox(&self) -> BBox {
        match geohash::decode_bbox(&self.0) {
            Ok(rect) => BBox {
                lat_min: rect.min().y,
                lat_max: rect.max().y,
                lon_min: rect.min().x,
                lon_max: rect.max().x,
            },
            // Unreachable for a parsed geohash; the whole world is the safe answer.
            Err(_) => BBox::WORLD,
        }
    }
}

impl TryFrom<String> for Geohash {
    type Error = InvalidGeohash;

    fn try_from(text: String) -> Result<Geohash, InvalidGeohash> {
        Geohash::parse(&text)
    }
}

impl From<Geohash> for String {
    fn from(hash: Geohash) -> String {
        hash.0
    }
}

/// A latitude/longitude box in degrees, closed on every side. Boxes here never cross the
/// antimeridian: `lon_min <= lon_max`, both within ±180.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub lat_min: f64,
    pub lat_max: f64,
    pub lon_min: f64,
    pub lon_max: f64,
}

impl BBox {
    pub const WORLD: BBox = BBox {
        lat_min: -90.0,
        lat_max: 90.0,
        lon_min: -180.0,
        lon_max: 180.0,
    };

    pub fn point(lat: f64, lon: f64) -> BBox {
        BBox {
            lat_min: lat,
            lat_max: lat,
            lon_min: lon,
            lon_max: lon,
        }
    }

    fn contains(&self, lat: f64, lon: f64) -> bool {
        (self.lat_min..=self.lat_max).contains(&lat) && lon_within(lon, self.lon_min, self.lon_max)
    }

    fn corners(&self) -> [(f64, f64); 4] {
        [
            (self.lat_min, self.lon_min),
            (self.lat_min, self.lon_max),
            (self.lat_max, self.lon_min),
            (self.lat_max, self.lon_max),
        ]
    }
}

/// Great-circle distance in metres between two points given in degrees.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// Whether `lon` lies in `[lo, hi]`, counting `lon ± 360` as the same meridian.
fn lon_within(lon: f64, lo: f64, hi: f64) -> bool {
    [lon, lon - 360.0, lon + 360.0]
        .iter()
        .any(|l| (lo..=hi).contains(l))
}

/// Shortest distance in metres from a point to a box (0 inside it). Exact on the sphere: the
/// closest point is on one of the four edges; on a parallel it is at the nearest longitude, on a
/// meridian at the latitude maximising `cos d = sin φ sin φp + cos φ cos φp cos Δλ` (an end of the
/// edge, or where the derivative vanishes).
pub fn point_to_box_m(lat: f64, lon: f64, b: &BBox) -> f64 {
    if b.contains(lat, lon) {
        return 0.0;
    }
    let nearest_lon = if lon_within(lon, b.lon_min, b.lon_max) {
        lon
    } else if (lon - b.lon_min).to_radians().cos() >= (lon - b.lon_max).to_radians().cos() {
        b.lon_min
    } else {
        b.lon_max
    };
    let mut best = haversine_m(lat, lon, b.lat_min, nearest_lon).min(haversine_m(
        lat,
        lon,
        b.lat_max,
        nearest_lon,
    ));
    let (sin_p, cos_p) = lat.to_radians().sin_cos();
    for edge_lon in [b.lon_min, b.lon_max] {
        let cos_dl = (lon - edge_lon).to_radians().cos();
        let turning = sin_p.atan2(cos_p * cos_dl).to_degrees();
        if (b.lat_min..=b.lat_max).contains(&turning) {
            best = best.min(haversine_m(lat, lon, turning, edge_lon));
        }
        best = best
            .min(haversine_m(lat, lon, b.lat_min, edge_lon))
            .min(haversine_m(lat, lon, b.lat_max, edge_lon));
    }
    best
}

/// Shortest distance in metres between two boxes (0 when they overlap or touch). Exact on the
/// sphere: when their longitudes overlap the gap is purely in latitude; otherwise a closest pair
/// always has a corner of one box in it (along a parallel the distance to any point of the other
/// box falls towards the nearer end, and two meridian edges have no interior minimum), so the
/// answer is the nearest corner-to-box distance.
pub fn box_to_box_m(a: &BBox, b: &BBox) -> f64 {
    let lat_overlap = a.lat_min <= b.lat_max && b.lat_min <= a.lat_max;
    let lon_overlap = [0.0, 360.0, -360.0]
        .iter()
        .any(|shift| a.lon_min <= b.lon_max + shift && b.lon_min + shift <= a.lon_max);
    if lon_overlap {
        if lat_overlap {
            return 0.0;
        }
        let gap = (a.lat_min - b.lat_max).max(b.lat_min - a.lat_max);
        return gap.to_radians() * EARTH_RADIUS_M;
    }
    let from_a = a.corners().map(|(lat, lon)| point_to_box_m(lat, lon, b));
    let from_b = b.corners().map(|(lat, lon)| point_to_box_m(lat, lon, a));
    from_a
        .into_iter()
        .chain(from_b)
        .fold(f64::INFINITY, f64::min)
}

/// A cell with its centre and the distance from the centre to its farthest point (a corner: along
/// an edge the distance from the centre has no interior maximum), for cheap first checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Disc {
    pub bbox: BBox,
    lat: f64,
    lon: f64,
    circumradius_m: f64,
}

impl Disc {
    pub fn new(bbox: BBox) -> Disc {
        let lat = (bbox.lat_min + bbox.lat_max) / 2.0;
        let lon = (bbox.lon_min + bbox.lon_max) / 2.0;
        let circumradius_m = bbox
            .corners()
            .iter()
            .map(|(a, o)| haversine_m(lat, lon, *a, *o))
            .fold(0.0, f64::max);
        Disc {
            bbox,
            lat,
            lon,
            circumradius_m,
        }
    }
}

/// An intent's place prepared for many checks: every point within `radius_m` of a cell.
///
/// Each check first compares centres (one haversine): within reach of the centre means within
/// reach of the cell; beyond reach by more than the circumradii means out of reach of every point.
/// Only the cases in between compute the exact closest distance. Both shortcuts follow from the
/// triangle inequality, so the answer is the exact one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    cell: Disc,
    radius_m: f64,
}

impl Place {
    pub fn new(cell: BBox, radius_m: f64) -> Place {
        Place {
            cell: Disc::new(cell),
            radius_m,
        }
    }

    /// Whether the place meets the circle of `circle_m` around `(lat, lon)`.
    pub fn meets_circle(&self, lat: f64, lon: f64, circle_m: f64) -> bool {
        let reach = self.radius_m + circle_m + SLACK_M;
        let d = haversine_m(self.cell.lat, self.cell.lon, lat, lon);
        if d <= reach {
            return true;
        }
        if d - self.cell.circumradius_m > reach {
            return false;
        }
        point_to_box_m(lat, lon, &self.cell.bbox) <= reach
    }

    /// Whether the place meets the cell `area`.
    pub fn meets_cell(&self, area: &Disc) -> bool {
        let reach = self.radius_m + SLACK_M;
        let d = haversine_m(self.cell.lat, self.cell.lon, area.lat, area.lon);
        if d <= reach {
            return true;
        }
        if d - self.cell.circumradius_m - area.circumradius_m > reach {
            return false;
        }
        box_to_box_m(&self.cell.bbox, &area.bbox) <= reach
    }
}

/// A latitude/longitude range that may run past ±180° in longitude (it then wraps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Span {
    lat_min: f64,
    lat_max: f64,
    lon_min: f64,
    lon_max: f64,
}

/// A range holding every point within `radius_m` of `b`, slightly widened.
pub(super) fn expand(b: &BBox, radius_m: f64) -> Span {
    let delta = radius_m / EARTH_RADIUS_M;
    let delta_deg = delta.to_degrees() * (1.0 + SPAN_SLACK_REL) + SPAN_SLACK_DEG;
    let lat_min = b.lat_min - delta_deg;
    let lat_max = b.lat_max + delta_deg;
    let whole_circle = Span {
        lat_min: lat_min.max(-90.0),
        lat_max: lat_max.min(90.0),
        lon_min: -180.0,
        lon_max: 180.0,
    };
    if lat_min <= -90.0 || lat_max >= 90.0 {
        return whole_circle;
    }
    // A cap of angular radius δ around latitude φ spans asin(sin δ / cos φ) of longitude either
    // side; the cap around the box's point nearest a pole is the widest.
    let poleward = b.lat_min.abs().max(b.lat_max.abs()).to_radians();
    let ratio = delta.sin() / poleward.cos();
    if ratio >= 1.0 {
        return whole_circle;
    }
    let dlon = ratio.asin().to_degrees() * (1.0 + SPAN_SLACK_REL) + SPAN_SLACK_DEG;
    Span {
        lat_min,
        lat_max,
        lon_min: b.lon_min - dlon,
        lon_max: b.lon_max + dlon,
    }
}

/// A cell as one integer: its bits left-aligned as if it had [`MAX_PRECISION`] characters, shifted
/// left by 3, with its precision in the low 3 bits. A cell then sorts just before all of its
/// descendants, which sort together, so "every cell inside this one" is one range.
pub(super) type CellKey = u64;

pub(super) fn cell_key(hash: &str) -> CellKey {
    let mut bits: u64 = 0;
    for b in hash.bytes() {
        let value = ALPHABET.iter().position(|a| *a == b).unwrap_or(0) as u64;
        bits = (bits << 5) | value;
    }
    let precision = hash.len().min(MAX_PRECISION);
    ((bits << (5 * (MAX_PRECISION - precision))) << 3) | precision as u64
}

pub(super) fn key_precision(key: CellKey) -> usize {
    (key & 7) as usize
}

/// The key of the ancestor of `key` at `precision` (which must not be finer than `key`'s).
pub(super) fn ancestor_key(key: CellKey, precision: usize) -> CellKey {
    let shift = 5 * (MAX_PRECISION - precision) + 3;
    ((key >> shift) << shift) | precision as u64
}

/// The last key of `key`'s descendants: `key..=descendants_end(key)` holds exactly the cell and
/// every finer cell inside it.
pub(super) fn descendants_end(key: CellKey) -> CellKey {
    let shift = 5 * (MAX_PRECISION - key_precision(key)) + 3;
    key | ((1u64 << shift) - 1)
}

/// Rows and columns of the geohash grid at a precision: characters alternate longitude and
/// latitude bits, longitude first.
fn grid(precision: usize) -> (i64, i64) {
    let bits = 5 * precision as u32;
    let lat_bits = bits / 2;
    (1i64 << lat_bits, 1i64 << (bits - lat_bits))
}

/// Row and column ranges (columns may run past the grid and wrap) of the cells meeting `span`.
fn cell_ranges(span: &Span, precision: usize) -> (i64, i64, i64, i64) {
    let (rows, cols) = grid(precision);
    let height = 180.0 / rows as f64;
    let width = 360.0 / cols as f64;
    let row = |lat: f64| (((lat + 90.0) / height).floor() as i64).clamp(0, rows - 1);
    let col = |lon: f64| ((lon + 180.0) / width).floor() as i64;
    let (col_min, mut col_max) = (col(span.lon_min), col(span.lon_max));
    if col_max - col_min >= cols {
        col_max = col_min + cols - 1;
    }
    (row(span.lat_min), row(span.lat_max), col_min, col_max)
}

/// The cells meeting `span` at the finest precision (up to `finest`) where they number at most
/// `cap`, or at precision 1 (at most 32 cells) if no precision is that frugal. Every point of the
/// span lies in one of the cells, borders included.
pub(super) fn covering(span: &Span, finest: usize, cap: usize) -> Vec<CellKey> {
    let precision = (1..=finest.clamp(1, MAX_PRECISION))
        .rev()
        .find(|p| {
            let (r0, r1, c0, c1) = cell_ranges(span, *p);
            ((r1 - r0 + 1) * (c1 - c0 + 1)) as usize <= cap
        })
        .unwrap_or(1);
    let (rows, cols) = grid(precision);
    let height = 180.0 / rows as f64;
    let width = 360.0 / cols as f64;
    let (r0, r1, c0, c1) = cell_ranges(span, precision);
    let mut keys = Vec::with_capacity(((r1 - r0 + 1) * (c1 - c0 + 1)) as usize);
    for row in r0..=r1 {
        for col in c0..=c1 {
            let col = col.rem_euclid(cols);
            let lat = -90.0 + (row as f64 + 0.5) * height;
            let lon = -180.0 + (col as f64 + 0.5) * width;
            if let Ok(hash) = geohash::encode(geohash::Coord { x: lon, y: lat }, precision) {
                keys.push(cell_key(&hash));
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hash(text: &str) -> Geohash {
        Geohash::parse(text).unwrap()
    }

    #[test]
    fn parse_refuses_bad_and_too_fine_hashes() {
        assert_eq!(hash("u09tvw0").precision(), 7);
        assert_eq!(Geohash::parse(""), Err(InvalidGeohash::Empty));
        assert_eq!(Geohash::parse("u09tvw0f"), Err(InvalidGeohash::TooFine(8)));
        assert_eq!(Geohash::parse("u09a"), Err(InvalidGeohash::Character('a')));
        assert_eq!(Geohash::parse("U09"), Err(InvalidGeohash::Character('U')));
        assert_eq!(Geohash::parse("u0é"), Err(InvalidGeohash::Character('é')));
        let message = InvalidGeohash::TooFine(8).to_string();
        assert!(message.contains("at most 7"), "{message}");
    }

    #[test]
    fn encode_and_decode_agree_with_known_cells() {
        // The Eiffel Tower is in u09tunq; Paris's centre in u09tv.
        assert_eq!(
            Geohash::encode(48.8584, 2.2945, 7).map(String::from),
            Ok("u09tunq".to_owned())
        );
        let b = hash("u09tv").bbox();
        assert!(b.lat_min < 48.86 && 48.86 < b.lat_max, "{b:?}");
        assert!(b.lon_min < 2.35 && 2.35 < b.lon_max, "{b:?}");
        assert_eq!(
            Geohash::encode(91.0, 0.0, 3),
            Err(InvalidGeohash::OutOfRange)
        );
        assert_eq!(
            Geohash::encode(0.0, 0.0, 8),
            Err(InvalidGeohash::TooFine(8))
        );
        // The crate wraps exact edges; the top row and the western edge are where they belong.
        assert_eq!(
            Geohash::encode(90.0, 180.0, 1).map(String::from),
            Ok("b".to_owned())
        );
        assert_eq!(
            Geohash::encode(-90.0, -180.0, 1).map(String::from),
            Ok("0".to_owned())
        );
    }

    #[test]
    fn haversine_matches_a_known_distance() {
        // Paris (Notre-Dame) to London (Charing Cross): about 343.5 km.
        let d = haversine_m(48.853, 2.3499, 51.5074, -0.1278);
        assert!((d - 343_500.0).abs() < 1_500.0, "{d}");
        assert_eq!(haversine_m(10.0, 20.0, 10.0, 20.0), 0.0);
    }

    #[test]
    fn point_and_box_distances() {
        let b = BBox {
            lat_min: 48.0,
            lat_max: 49.0,
            lon_min: 2.0,
            lon_max: 3.0,
        };
        assert_eq!(point_to_box_m(48.5, 2.5, &b), 0.0);
        assert_eq!(point_to_box_m(49.0, 3.0, &b), 0.0);
        // Due north: the gap is a meridian arc.
        let north = point_to_box_m(50.0, 2.5, &b);
        assert!(
            (north - 1f64.to_radians() * EARTH_RADIUS_M).abs() < 0.01,
            "{north}"
        );
        // Due east, at the box's middle latitude: the closest point is on the eastern edge,
        // slightly poleward of the point's own latitude.
        let east = point_to_box_m(48.5, 4.0, &b);
        assert!(east < haversine_m(48.5, 4.0, 48.5, 3.0));
        assert!(east > 73_000.0 && east < 74_000.0, "{east}");
        let c = BBox {
            lat_min: 50.0,
            lat_max: 51.0,
            lon_min: 2.5,
            lon_max: 3.5,
        };
        assert!((box_to_box_m(&b, &c) - north).abs() < 0.01);
        assert_eq!(box_to_box_m(&b, &b), 0.0);
    }

    #[test]
    fn keys_order_cells_before_their_descendants() {
        let cell = cell_key("u09");
        assert_eq!(key_precision(cell), 3);
        for inside in ["u09", "u09t", "u09tv", "u09zzzz", "u0900"] {
            let k = cell_key(inside);
            assert!(cell <= k && k <= descendants_end(cell), "{inside}");
            assert_eq!(ancestor_key(k, 3), cell);
        }
        for outside in ["u0", "u", "u08zzzz", "u0b", "u0b0000"] {
            let k = cell_key(outside);
            assert!(k < cell || k > descendants_end(cell), "{outside}");
        }
    }

    #[test]
    fn covering_respects_the_cap_and_wraps() {
        let span = expand(&hash("u09tv").bbox(), 0.0);
        let cells = covering(&span, MAX_PRECISION, 16);
        assert!(cells.contains(&cell_key("u09tv")) || cells.len() <= 16);
        // A box spanning the antimeridian wraps to the other side of the grid.
        let wrap = Span {
            lat_min: 0.0,
            lat_max: 1.0,
            lon_min: 179.0,
            lon_max: 181.0,
        };
        let cells = covering(&wrap, 2, 16);
        assert!(cells.contains(&cell_key(&Geohash::encode(0.5, 179.5, 2).unwrap().0)));
        assert!(cells.contains(&cell_key(&Geohash::encode(0.5, -179.5, 2).unwrap().0)));
        // Near a pole the whole ring of longitudes is covered.
        let polar = expand(&BBox::point(89.99, 0.0), 50_000.0);
        assert_eq!(covering(&polar, 1, 64).len(), 8);
    }

    fn europe() -> impl Strategy<Value = (f64, f64)> {
        (35.0..70.0f64, -10.0..30.0f64)
    }

    fn small_box() -> impl Strategy<Value = BBox> {
        (europe(), 1usize..=7).prop_map(|((lat, lon), p)| {
            Geohash::encode(lat, lon, p)
                .map(|g| g.bbox())
                .unwrap_or(BBox::WORLD)
        })
    }

    /// Points on a box's boundary, `n` per edge.
    fn boundary(b: &BBox, n: usize) -> Vec<(f64, f64)> {
        let mut points = Vec::new();
        for i in 0..=n {
            let t = i as f64 / n as f64;
            let lat = b.lat_min + t * (b.lat_max - b.lat_min);
            let lon = b.lon_min + t * (b.lon_max - b.lon_min);
            points.extend([
                (lat, b.lon_min),
                (lat, b.lon_max),
                (b.lat_min, lon),
                (b.lat_max, lon),
            ]);
        }
        points
    }

    proptest! {
        // Failing seeds are kept beside this file, as in the terms module.
        #![proptest_config(ProptestConfig {
            cases: 500,
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
            )),
            ..ProptestConfig::default()
        })]

        // The distance is a lower bound of every sampled pair and no more than a sampling
        // step below the best sampled pair: exact, as far as sampling can tell.
        #[test]
        fn point_to_box_is_the_closest_boundary_point(
            (lat, lon) in europe(),
            b in small_box(),
        ) {
            let d = point_to_box_m(lat, lon, &b);
            let n = 400;
            let sampled = boundary(&b, n)
                .into_iter()
                .map(|(a, o)| haversine_m(lat, lon, a, o))
                .fold(f64::INFINITY, f64::min);
            let step = haversine_m(b.lat_min, b.lon_min, b.lat_max, b.lon_max) / n as f64;
            // Zero exactly when the point is inside; otherwise the closest point is on the
            // boundary.
            prop_assert_eq!(d == 0.0, b.contains(lat, lon));
            if d > 0.0 {
                prop_assert!(d <= sampled + 1e-3, "{d} > {sampled}");
                prop_assert!(sampled - d <= step + 1e-3, "{d} much below {sampled} (step {step})");
            }
        }

        #[test]
        fn box_to_box_is_the_closest_pair(a in small_box(), b in small_box()) {
            let d = box_to_box_m(&a, &b);
            let n = 60;
            let sb = boundary(&b, n);
            let sampled = boundary(&a, n)
                .into_iter()
                .flat_map(|(la, oa)| sb.iter().map(move |(lb, ob)| haversine_m(la, oa, *lb, *ob)))
                .fold(f64::INFINITY, f64::min);
            let step = (haversine_m(a.lat_min, a.lon_min, a.lat_max, a.lon_max)
                + haversine_m(b.lat_min, b.lon_min, b.lat_max, b.lon_max)) / n as f64;
            // Zero exactly when they share a point (one may hold the other without their
            // boundaries meeting); otherwise a closest pair lies on the boundaries.
            let overlap = a.lat_min <= b.lat_max && b.lat_min <= a.lat_max
                && a.lon_min <= b.lon_max && b.lon_min <= a.lon_max;
            prop_assert_eq!(d == 0.0, overlap);
            if d > 0.0 {
                prop_assert!(d <= sampled + 1e-3, "{d} > {sampled}");
                prop_assert!(sampled - d <= step + 1e-3, "{d} much below {sampled}");
            }
        }

        // The centre-distance shortcuts never change the exact answer (away from the last
        // micrometre, where rounding may go either way).
        #[test]
        fn place_shortcuts_agree_with_exact_distances(
            cell in small_box(),
            (dlat, dlon) in (-0.8..0.8f64, -0.8..0.8f64),
            area_precision in 1usize..=7,
            radius in 1.0..50_000.0f64,
            circle in 1.0..50_000.0f64,
        ) {
            let place = Place::new(cell, radius);
            let (lat, lon) = (cell.lat_min + dlat, cell.lon_min + dlon);
            let area = Geohash::encode(lat, lon, area_precision).unwrap().bbox();
            let d = point_to_box_m(lat, lon, &cell);
            if (d - radius - circle - SLACK_M).abs() > 1e-6 {
                prop_assert_eq!(place.meets_circle(lat, lon, circle), d <= radius + circle + SLACK_M);
            }
            let d = box_to_box_m(&cell, &area);
            if (d - radius - SLACK_M).abs() > 1e-6 {
                prop_assert_eq!(place.meets_cell(&Disc::new(area)), d <= radius + SLACK_M);
            }
        }

        // Every point within the radius of a box lies inside the expanded span's covering.
        #[test]
        fn coverings_hold_every_point_near_the_box(
            b in small_box(),
            radius in 0.0..50_000.0f64,
            bearing in 0.0..360.0f64,
            fraction in 0.0..=1.0f64,
            corner in 0usize..4,
            cap in 1usize..40,
        ) {
            let (lat, lon) = b.corners()[corner];
            let (plat, plon) = destination(lat, lon, bearing, radius * fraction);
            let cells = covering(&expand(&b, radius), MAX_PRECISION, cap);
            let p = key_precision(cells[0]);
            let home = cell_key(&Geohash::encode(plat, plon, p).unwrap().0);
            prop_assert!(cells.contains(&home), "{plat},{plon} outside the covering");
        }
    }

    /// The point `distance_m` away from `(lat, lon)` along `bearing_deg`.
    fn destination(lat: f64, lon: f64, bearing_deg: f64, distance_m: f64) -> (f64, f64) {
        let (p1, l1) = (lat.to_radians(), lon.to_radians());
        let d = distance_m / EARTH_RADIUS_M;
        let t = bearing_deg.to_radians();
        let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * t.cos()).asin();
        let l2 = l1 + (t.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
        (p2.to_degrees(), l2.to_degrees())
    }
}
