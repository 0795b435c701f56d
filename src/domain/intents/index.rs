//! The subscription index: which brands an intent goes to, without scanning every subscription.
//!
//! A trie over category segments holds, at each node, the brands subscribed to that node, so an
//! intent filed under `food.lunch` visits only the nodes `food` and `food.lunch`. Each node keeps
//! its brands in three buckets: every brand (for intents without a place), brands without areas
//! (everywhere), and areas keyed by geohash cells. A cell area is keyed by its own cell; a circle
//! by the cells covering its bounding box, at the finest precision that needs at most
//! [`CIRCLE_CELLS`] of them. Cells of every precision live in one ordered map per node, keyed so
//! that a cell sorts just before its descendants.
//!
//! A query covers the intent's place (its cell widened by its radius) with at most
//! [`QUERY_CELLS`] cells, then looks up, for each, the stored cells that contain it (one exact
//! look-up per coarser precision) and those inside it (one range). Two geohash cells overlap only
//! if one contains the other, so this finds every area whose cells meet the place: no true match
//! is missed. Each candidate area is then checked once with the rule of
//! [`ValidSubscription::matches`], so the answer is the same set as the linear scan's
//! ([`linear_scan`]); a proptest holds the two together.

use std::collections::{BTreeMap, HashMap};

use super::geo::{self, BBox, CellKey, Disc, MAX_PRECISION, Place};
use super::intent::{IntentLocation, ValidIntent};
use super::subscription::{Area, ValidSubscription};
use super::taxonomy::IntentCategory;

/// The most cells a circle area is stored under: a 50 km circle sits in one to four cells of
/// precision 3 (156 km), a 1 km one in one to four of precision 5 (4.9 km). Finer coverings (16
/// cells) made the index 45% larger and slower to update for no faster query in the benchmark
/// (`tests/bench/matching.rs`), since a candidate's check is cheap once its area is in cache.
pub const CIRCLE_CELLS: usize = 4;
/// The most cells a query covers the intent's place with (32 measured the same as 16).
pub const QUERY_CELLS: usize = 16;

type Slot = u32;
/// An area's place in the index's arena of shapes.
type ShapeId = u32;

/// An area in the form the check wants: a cell's bounds decoded once.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Cell(Disc),
    Circle { lat: f64, lon: f64, radius_m: f64 },
}

impl Shape {
    fn of(area: &Area) -> Shape {
        match area {
            Area::Cell { geohash } => Shape::Cell(Disc::new(geohash.bbox())),
            Area::Circle { lat, lon, radius_m } => Shape::Circle {
                lat: *lat,
                lon: *lon,
                radius_m: f64::from(*radius_m),
            },
        }
    }

    /// The same decision as [`Area::meets`], from the same numbers.
    fn meets(&self, place: &Place) -> bool {
        match self {
            Shape::Cell(cell) => place.meets_cell(cell),
            Shape::Circle { lat, lon, radius_m } => place.meets_circle(*lat, *lon, *radius_m),
        }
    }
}

/// The cells an area is stored under: a cell area its own, a circle those covering its bounds.
fn area_cells(area: &Area) -> Vec<CellKey> {
    match area {
        Area::Cell { geohash } => vec![geo::cell_key(geohash.as_str())],
        Area::Circle { lat, lon, radius_m } => geo::covering(
            &geo::expand(&BBox::point(*lat, *lon), f64::from(*radius_m)),
            MAX_PRECISION,
            CIRCLE_CELLS,
        ),
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    children: Vec<(Box<str>, u32)>,
    /// Every brand subscribed here.
    all: Vec<Slot>,
    /// Brands subscribed here with no areas.
    everywhere: Vec<Slot>,
    /// Areas of brands subscribed here, by cell: (brand, the area's place in the arena).
    cells: BTreeMap<CellKey, Vec<(Slot, ShapeId)>>,
}

/// What removing a brand needs to know.
#[derive(Debug, Clone)]
struct Entry {
    nodes: Vec<u32>,
    /// Every cell key the brand's areas are stored under.
    keys: Vec<CellKey>,
    /// Where its areas start in the arena, and how many there are.
    shapes: ShapeId,
    shape_count: u32,
}

/// Brands' subscriptions, indexed for [`SubscriptionIndex::matches`]. Keyed by client id; one
/// subscription per brand.
#[derive(Debug, Clone)]
pub struct SubscriptionIndex {
    /// `nodes[0]` is the root, above the top-level categories.
    nodes: Vec<Node>,
    /// Client ids by slot, apart and compact because a query reads thousands of them, in
    /// increasing slot order.
    ids: Vec<Option<Box<str>>>,
    /// Every brand's areas, one after the other; buckets point here, so checking a candidate
    /// costs one memory access. Removed brands leave holes until [`Self::compact`].
    shapes: Vec<Shape>,
    /// Arena entries that belong to no brand any more.
    dead_shapes: usize,
    entries: Vec<Option<Entry>>,
    free: Vec<Slot>,
    by_client: HashMap<Box<str>, Slot>,
}

impl Default for SubscriptionIndex {
    fn default() -> Self {
        SubscriptionIndex::new()
    }
}

impl SubscriptionIndex {
    pub fn new() -> SubscriptionIndex {
        SubscriptionIndex {
            nodes: vec![Node::default()],
            ids: Vec::new(),
            shapes: Vec::new(),
            dead_shapes: 0,
            entries: Vec::new(),
            free: Vec::new(),
            by_client: HashMap::new(),
        }
    }

    /// How many brands are indexed.
    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    pub fn contains(&self, client_id: &str) -> bool {
        self.by_client.contains_key(client_id)
    }

    /// Indexes a brand's subscription, replacing the one it had.
    pub fn insert(&mut self, client_id: &str, subscription: &ValidSubscription) {
        self.remove(client_id);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.entries.push(None);
                self.ids.push(None);
                Slot::try_from(self.entries.len() - 1).unwrap_or(Slot::MAX)
            }
        };
        let mut nodes: Vec<u32> = subscription
            .categories
            .iter()
            .map(|c| self.node_for(c))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        let first_shape = ShapeId::try_from(self.shapes.len()).unwrap_or(ShapeId::MAX);
        self.shapes.extend(subscription.areas.iter().map(Shape::of));
        let area_cells: Vec<Vec<CellKey>> = subscription.areas.iter().map(area_cells).collect();
        for &n in &nodes {
            let node = &mut self.nodes[n as usize];
            node.all.push(slot);
            if area_cells.is_empty() {
                node.everywhere.push(slot);
            }
            for (area, keys) in (first_shape..).zip(&area_cells) {
                for key in keys {
                    node.cells.entry(*key).or_default().push((slot, area));
                }
            }
        }
        let mut keys: Vec<CellKey> = area_cells.into_iter().flatten().collect();
        keys.sort_unstable();
        keys.dedup();
        self.entries[slot as usize] = Some(Entry {
            nodes,
            keys,
            shapes: first_shape,
            shape_count: u32::try_from(subscription.areas.len()).unwrap_or(u32::MAX),
        });
        self.ids[slot as usize] = Some(client_id.into());
        self.by_client.insert(client_id.into(), slot);
    }

    /// Forgets a brand's subscription; false if it had none.
    pub fn remove(&mut self, client_id: &str) -> bool {
        let Some(slot) = self.by_client.remove(client_id) else {
            return false;
        };
        let Some(entry) = self.entries.get_mut(slot as usize).and_then(Option::take) else {
            return false;
        };
        self.ids[slot as usize] = None;
        for n in entry.nodes {
            let node = &mut self.nodes[n as usize];
            node.all.retain(|s| *s != slot);
            node.everywhere.retain(|s| *s != slot);
            for key in &entry.keys {
                if let Some(bucket) = node.cells.get_mut(key) {
                    bucket.retain(|(s, _)| *s != slot);
                    if bucket.is_empty() {
                        node.cells.remove(key);
                    }
                }
            }
        }
        self.free.push(slot);
        self.dead_shapes += entry.shape_count as usize;
        if self.dead_shapes > 1024 && self.dead_shapes * 2 > self.shapes.len() {
            self.compact();
        }
        true
    }

    /// Drops the arena's holes: live brands' areas move down, and every bucket follows them.
    /// Runs once holes are half the arena, so its cost is spread over the removals that made them.
    fn compact(&mut self) {
        let mut moved = vec![ShapeId::MAX; self.shapes.len()];
        let mut shapes = Vec::with_capacity(self.shapes.len() - self.dead_shapes);
        for entry in self.entries.iter_mut().flatten() {
            let start = entry.shapes as usize;
            let new_start = ShapeId::try_from(shapes.len()).unwrap_or(ShapeId::MAX);
            for (old, new) in (start..start + entry.shape_count as usize).zip(new_start..) {
                moved[old] = new;
                shapes.push(self.shapes[old]);
            }
            entry.shapes = new_start;
        }
        for node in &mut self.nodes {
            for bucket in node.cells.values_mut() {
                for (_, shape) in bucket.iter_mut() {
                    *shape = moved[*shape as usize];
                }
            }
        }
        self.shapes = shapes;
        self.dead_shapes = 0;
    }

    /// The trie node of a category, created on the way down.
    fn node_for(&mut self, category: &IntentCategory) -> u32 {
        let mut at = 0usize;
        for segment in category.segments() {
            let found = self.nodes[at]
                .children
                .iter()
                .find(|(s, _)| &**s == segment)
                .map(|(_, n)| *n);
            at = match found {
                Some(n) => n as usize,
                None => {
                    let n = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[at]
                        .children
                        .push((segment.into(), u32::try_from(n).unwrap_or(u32::MAX)));
                    n
                }
            };
        }
        u32::try_from(at).unwrap_or(u32::MAX)
    }

    /// The nodes on the category's path that exist, from the top down (never the root).
    fn path(&self, category: &IntentCategory) -> Vec<&Node> {
        let mut nodes = Vec::with_capacity(4);
        let mut at = &self.nodes[0];
        for segment in category.segments() {
            match at.children.iter().find(|(s, _)| &**s == segment) {
                Some((_, n)) => {
                    at = &self.nodes[*n as usize];
                    nodes.push(at);
                }
                None => break,
            }
        }
        nodes
    }

    /// The client ids of the brands an intent goes to, each once, in no particular order (sorting
    /// thousands of ids would cost more than finding them).
    pub fn matches(&self, intent: &ValidIntent) -> Vec<&str> {
        self.matches_place(&intent.category, intent.location.as_ref())
    }

    /// [`SubscriptionIndex::matches`] from an intent's category and place alone.
    pub fn matches_place(
        &self,
        category: &IntentCategory,
        location: Option<&IntentLocation>,
    ) -> Vec<&str> {
        let nodes = self.path(category);
        let mut hit = vec![0u64; self.entries.len().div_ceil(64)];
        let mark = |bits: &mut [u64], i: u32| bits[i as usize / 64] |= 1 << (i % 64);
        let marked = |bits: &[u64], i: u32| bits[i as usize / 64] & (1 << (i % 64)) != 0;
        match location {
            None => {
                for node in &nodes {
                    for &slot in &node.all {
                        mark(&mut hit, slot);
                    }
                }
            }
            Some(location) => {
                let cell = location.geohash.bbox();
                let radius = f64::from(location.radius_m);
                let place = Place::new(cell, radius);
                let query = geo::covering(&geo::expand(&cell, radius), MAX_PRECISION, QUERY_CELLS);
                let mut containing: Vec<CellKey> = query
                    .iter()
                    .flat_map(|k| (1..geo::key_precision(*k)).map(|p| geo::ancestor_key(*k, p)))
                    .collect();
                containing.sort_unstable();
                containing.dedup();
                // A circle sits in several cells, and a brand in several nodes of the path: each
                // area is checked once, and none of a brand that already matched.
                let mut checked = vec![0u64; self.shapes.len().div_ceil(64)];
                let mut check = |hit: &mut [u64], bucket: &[(Slot, ShapeId)]| {
                    for &(slot, shape) in bucket {
                        if marked(hit, slot) || marked(&checked, shape) {
                            continue;
                        }
                        mark(&mut checked, shape);
                        if self.shapes[shape as usize].meets(&place) {
                            mark(hit, slot);
                        }
                    }
                };
                for node in &nodes {
                    for &slot in &node.everywhere {
                        mark(&mut hit, slot);
                    }
                    if node.cells.is_empty() {
                        continue;
                    }
                    for key in &containing {
                        if let Some(bucket) = node.cells.get(key) {
                            check(&mut hit, bucket);
                        }
                    }
                    for key in &query {
                        for (_, bucket) in node.cells.range(*key..=geo::descendants_end(*key)) {
                            check(&mut hit, bucket);
                        }
                    }
                }
            }
        }
        let mut found: Vec<&str> = Vec::new();
        for (word_index, word) in hit.iter().enumerate() {
            let mut bits = *word;
            while bits != 0 {
                let slot = word_index * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(Some(id)) = self.ids.get(slot) {
                    found.push(id);
                }
            }
        }
        found
    }
}

/// The reference the index must agree with: every subscription checked in turn. Returns the
/// client ids that match, sorted and without duplicates.
pub fn linear_scan<'a>(
    subscriptions: impl IntoIterator<Item = (&'a str, &'a ValidSubscription)>,
    intent: &ValidIntent,
) -> Vec<&'a str> {
    let mut found: Vec<&str> = subscriptions
        .into_iter()
        .filter(|(_, s)| s.matches(&intent.category, intent.location.as_ref()))
        .map(|(id, _)| id)
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
