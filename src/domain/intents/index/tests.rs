//! The index against a linear scan (the oracle), and its edge cases.

use super::*;
use crate::domain::intents::geo::Geohash;
use crate::domain::intents::subscription::NewSubscription;
use crate::domain::intents::taxonomy::TAXONOMY;
use proptest::prelude::*;
use serde_json::{Value, json};
use time::OffsetDateTime;

fn sub(body: Value) -> ValidSubscription {
    serde_json::from_value::<NewSubscription>(body)
        .unwrap()
        .validate(false)
        .unwrap()
}

fn intent(category: &str, place: Option<(&str, u32)>) -> ValidIntent {
    ValidIntent {
        category: IntentCategory::parse(category).unwrap(),
        text: "t".into(),
        expires_at: OffsetDateTime::UNIX_EPOCH,
        location: place.map(|(hash, radius_m)| IntentLocation {
            geohash: Geohash::parse(hash).unwrap(),
            radius_m,
        }),
        window: None,
        price_max: None,
        party_size: None,
        tags: Vec::new(),
        max_offers: 10,
        disclose: Vec::new(),
    }
}

/// The index's answer, sorted like the scan's.
fn found<'a>(index: &'a SubscriptionIndex, intent: &ValidIntent) -> Vec<&'a str> {
    let mut found = index.matches(intent);
    found.sort_unstable();
    found
}

fn fixture() -> (SubscriptionIndex, Vec<(String, ValidSubscription)>) {
    let subs = vec![
        ("everywhere-food", sub(json!({"categories": ["food"]}))),
        (
            "paris-lunch",
            sub(json!({"categories": ["food.lunch"], "areas": [{"geohash": "u09t"}]})),
        ),
        (
            "paris-circle",
            sub(
                json!({"categories": ["food"], "areas": [{"lat": 48.8566, "lon": 2.3522, "radius_m": 3000}]}),
            ),
        ),
        (
            "lyon",
            sub(
                json!({"categories": ["food", "travel"], "areas": [{"lat": 45.764, "lon": 4.8357, "radius_m": 20000}]}),
            ),
        ),
        (
            "plumber",
            sub(json!({"categories": ["home.repair"], "areas": [{"geohash": "u09"}]})),
        ),
        ("hotels", sub(json!({"categories": ["travel.hotel"]}))),
    ];
    let subs: Vec<(String, ValidSubscription)> =
        subs.into_iter().map(|(id, s)| (id.to_owned(), s)).collect();
    let mut index = SubscriptionIndex::new();
    for (id, s) in &subs {
        index.insert(id, s);
    }
    (index, subs)
}

#[test]
fn matches_follow_category_prefixes() {
    let (index, _) = fixture();
    assert_eq!(
        found(&index, &intent("food.lunch", Some(("u09tv", 500)))),
        ["everywhere-food", "paris-circle", "paris-lunch"]
    );
    assert_eq!(
        found(&index, &intent("food.dinner", Some(("u09tv", 500)))),
        ["everywhere-food", "paris-circle"]
    );
    assert_eq!(
        found(
            &index,
            &intent("home.repair.plumbing", Some(("u09tv", 500)))
        ),
        ["plumber"]
    );
    assert!(
        index
            .matches(&intent("home.cleaning", Some(("u09tv", 500))))
            .is_empty()
    );
    assert_eq!(
        found(&index, &intent("travel.hotel", None)),
        ["hotels", "lyon"]
    );
}

#[test]
fn intents_without_a_place_reach_every_area() {
    let (index, _) = fixture();
    assert_eq!(
        found(&index, &intent("food.lunch", None)),
        ["everywhere-food", "lyon", "paris-circle", "paris-lunch"]
    );
}

#[test]
fn subscriptions_without_areas_reach_every_place() {
    let (index, _) = fixture();
    // Reykjavík: only the brands without areas.
    assert_eq!(
        found(&index, &intent("food.lunch", Some(("ge85", 1000)))),
        ["everywhere-food"]
    );
}

#[test]
fn circles_are_reached_across_cell_borders() {
    let mut index = SubscriptionIndex::new();
    // A 2 km circle centred 1.5 km east of u09tv's eastern edge (2.373 E), so it spans the
    // border into u09ty and its cells straddle two precision-5 cells.
    let lon = 2.373 + 1_500.0 / (111_194.9 * 48.845f64.to_radians().cos());
    index.insert(
        "east",
        &sub(json!({"categories": ["food"], "areas": [{"lat": 48.845, "lon": lon, "radius_m": 2000}]})),
    );
    assert_eq!(
        found(&index, &intent("food.lunch", Some(("u09tv", 1)))),
        ["east"]
    );
    // From the western neighbour (u09tu, east edge 2.3291 E) the circle's edge is
    // 4716 m - 2000 m = 2716 m away.
    for radius in [1, 2_700] {
        assert!(
            index
                .matches(&intent("food.lunch", Some(("u09tu", radius))))
                .is_empty()
        );
    }
    assert_eq!(
        found(&index, &intent("food.lunch", Some(("u09tu", 2_720)))),
        ["east"]
    );
}

#[test]
fn coarse_and_fine_cells_meet_through_the_hierarchy() {
    let mut index = SubscriptionIndex::new();
    index.insert(
        "coarse",
        &sub(json!({"categories": ["food"], "areas": [{"geohash": "u"}]})),
    );
    index.insert(
        "fine",
        &sub(json!({"categories": ["food"], "areas": [{"geohash": "u09tvw0"}]})),
    );
    // A fine intent inside a coarse area, a coarse intent around a fine area.
    assert_eq!(
        found(&index, &intent("food.lunch", Some(("u09tvw0", 1)))),
        ["coarse", "fine"]
    );
    assert_eq!(
        found(&index, &intent("food.lunch", Some(("u0", 1)))),
        ["coarse", "fine"]
    );
    assert_eq!(
        found(&index, &intent("food.lunch", Some(("u09tvw1", 1)))),
        ["coarse", "fine"]
    );
    assert_eq!(
        found(&index, &intent("food.lunch", Some(("u09tvwh", 1)))),
        ["coarse"]
    );
}

#[test]
fn replace_and_remove() {
    let (mut index, _) = fixture();
    assert_eq!(index.len(), 6);
    index.insert("paris-lunch", &sub(json!({"categories": ["travel.hotel"]})));
    assert_eq!(index.len(), 6);
    assert_eq!(
        found(&index, &intent("food.lunch", Some(("u09tv", 500)))),
        ["everywhere-food", "paris-circle"]
    );
    assert_eq!(
        found(&index, &intent("travel.hotel", None)),
        ["hotels", "lyon", "paris-lunch"]
    );
    assert!(index.remove("hotels"));
    assert!(!index.remove("hotels"));
    assert!(!index.contains("hotels"));
    assert_eq!(
        found(&index, &intent("travel.hotel", None)),
        ["lyon", "paris-lunch"]
    );
    // A freed slot is reused without leaking the old brand's areas.
    index.insert("newcomer", &sub(json!({"categories": ["leisure"]})));
    assert_eq!(
        found(&index, &intent("travel.hotel", None)),
        ["lyon", "paris-lunch"]
    );
    assert_eq!(found(&index, &intent("leisure.cinema", None)), ["newcomer"]);
    for id in [
        "everywhere-food",
        "paris-lunch",
        "paris-circle",
        "lyon",
        "plumber",
        "newcomer",
    ] {
        assert!(index.remove(id));
    }
    assert!(index.is_empty());
    assert!(
        index
            .nodes
            .iter()
            .all(|n| n.all.is_empty() && n.cells.is_empty())
    );
}

#[test]
fn places_meet_across_the_antimeridian() {
    // Fiji straddles 180°: an intent just west of it, brands just east.
    let west = Geohash::encode(-17.0, 179.99, 7).unwrap();
    let east_cell = Geohash::encode(-17.0, -179.99, 3).unwrap();
    let mut index = SubscriptionIndex::new();
    index.insert(
        "circle",
        &sub(json!({"categories": ["food"], "areas": [{"lat": -17.0, "lon": -179.99, "radius_m": 1500}]})),
    );
    index.insert(
        "cell",
        &sub(json!({"categories": ["food"], "areas": [{"geohash": east_cell.as_str()}]})),
    );
    // Across the line, the 3-character cell is 1022 m from the intent's cell and the
    // circle's edge 2085 m - 1500 m = 585 m.
    let at = |radius| found(&index, &intent("food.lunch", Some((west.as_str(), radius))));
    assert!(at(500).is_empty());
    assert_eq!(at(1_000), ["circle"]);
    assert_eq!(at(1_100), ["cell", "circle"]);
}

#[test]
fn compaction_keeps_every_area_reachable() {
    // Enough churn to compact the arena several times over.
    let mut seed = 7u64;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let random_sub = |next: &mut dyn FnMut(u64) -> u64| {
        let lat = 48.5 + next(1000) as f64 / 1000.0;
        let lon = 2.0 + next(1000) as f64 / 1000.0;
        let areas: Vec<Value> = (0..1 + next(3))
            .map(|i| {
                if i % 2 == 0 {
                    json!({"lat": lat, "lon": lon, "radius_m": 1 + next(20_000)})
                } else {
                    json!({"geohash": Geohash::encode(lat, lon, 3 + next(5) as usize).unwrap().as_str()})
                }
            })
            .collect();
        let category = TAXONOMY[next(TAXONOMY.len() as u64) as usize].id;
        sub(json!({"categories": [category], "areas": areas}))
    };
    let ids: Vec<String> = (0..1500).map(|i| format!("b{i}")).collect();
    let mut live: Vec<Option<ValidSubscription>> = vec![None; ids.len()];
    let mut index = SubscriptionIndex::new();
    let mut inserted = 0;
    for round in 0..6 {
        for (i, id) in ids.iter().enumerate() {
            if round % 2 == 1 && i % 3 == 0 {
                index.remove(id);
                live[i] = None;
            } else {
                let s = random_sub(&mut next);
                inserted += s.areas.len();
                index.insert(id, &s);
                live[i] = Some(s);
            }
        }
        assert!(index.dead_shapes * 2 <= index.shapes.len().max(2048));
    }
    assert!(
        index.shapes.len() < inserted / 2,
        "the arena was never compacted"
    );
    let subs: Vec<(&str, &ValidSubscription)> = ids
        .iter()
        .zip(&live)
        .filter_map(|(id, s)| s.as_ref().map(|s| (id.as_str(), s)))
        .collect();
    let mut matched = 0;
    for hash in ["u09tv", "u09w", "u0d", "u09tvw0", "u0", "u09y5"] {
        for category in ["food.lunch", "home.repair.plumbing", "travel.hotel"] {
            let intent = intent(category, Some((hash, 2_000)));
            let expected = linear_scan(subs.iter().copied(), &intent);
            matched += expected.len();
            assert_eq!(found(&index, &intent), expected, "{hash} {category}");
        }
    }
    assert!(matched > 100, "{matched}");
}

const CITIES: [(f64, f64); 4] = [
    (48.8566, 2.3522),
    (48.7, 2.6),
    (45.764, 4.8357),
    (52.52, 13.405),
];

fn near_city() -> impl Strategy<Value = (f64, f64)> {
    (0usize..CITIES.len(), -0.3..0.3f64, -0.4..0.4f64)
        .prop_map(|(c, dlat, dlon)| (CITIES[c].0 + dlat, CITIES[c].1 + dlon))
}

fn area() -> impl Strategy<Value = Value> {
    prop_oneof![
        (near_city(), 1usize..=7).prop_map(|((lat, lon), p)| {
            json!({"geohash": Geohash::encode(lat, lon, p).unwrap().as_str()})
        }),
        (near_city(), prop_oneof![1u32..2_000, 1u32..=50_000])
            .prop_map(|((lat, lon), r)| json!({"lat": lat, "lon": lon, "radius_m": r})),
    ]
}

fn subscription() -> impl Strategy<Value = ValidSubscription> {
    (
        prop::collection::vec(0..TAXONOMY.len(), 1..4),
        prop_oneof![1 => Just(Vec::new()), 4 => prop::collection::vec(area(), 1..4)],
    )
        .prop_map(|(categories, areas)| {
            let categories: Vec<&str> = categories.iter().map(|i| TAXONOMY[*i].id).collect();
            sub(json!({"categories": categories, "areas": areas}))
        })
}

fn random_intent() -> impl Strategy<Value = ValidIntent> {
    let categories: Vec<&'static str> = TAXONOMY
        .iter()
        .map(|e| e.id)
        .filter(|id| id.contains('.'))
        .collect();
    (
        prop::sample::select(categories),
        prop::option::weighted(
            0.9,
            (
                near_city(),
                1usize..=7,
                prop_oneof![1u32..2_000, 1u32..=50_000],
            ),
        ),
    )
        .prop_map(|(category, place)| {
            let hash = place.map(|((lat, lon), p, r)| (Geohash::encode(lat, lon, p).unwrap(), r));
            intent(category, hash.as_ref().map(|(h, r)| (h.as_str(), *r)))
        })
}

proptest! {
    // Failing seeds are kept beside this file, as in the terms module.
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    // The index answers exactly what checking every subscription answers, also after
    // replacing and removing some.
    #[test]
    fn index_agrees_with_the_linear_scan(
        subs in prop::collection::vec(subscription(), 1..60),
        replacements in prop::collection::vec((0usize..60, subscription()), 0..10),
        removals in prop::collection::vec(0usize..60, 0..10),
        intents in prop::collection::vec(random_intent(), 1..20),
    ) {
        let mut subs: Vec<(String, Option<ValidSubscription>)> = subs
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("brand-{i:02}"), Some(s)))
            .collect();
        let mut index = SubscriptionIndex::new();
        for (id, s) in &subs {
            if let Some(s) = s {
                index.insert(id, s);
            }
        }
        let n = subs.len();
        for (i, s) in replacements {
            index.insert(&subs[i % n].0, &s);
            subs[i % n].1 = Some(s);
        }
        for i in removals {
            index.remove(&subs[i % n].0);
            subs[i % n].1 = None;
        }
        let live: Vec<(&str, &ValidSubscription)> = subs
            .iter()
            .filter_map(|(id, s)| s.as_ref().map(|s| (id.as_str(), s)))
            .collect();
        prop_assert_eq!(index.len(), live.len());
        for intent in &intents {
            prop_assert_eq!(found(&index, intent), linear_scan(live.iter().copied(), intent));
        }
    }
}
