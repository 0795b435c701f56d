//! Budgets for consent requests waiting for the person's decision, so that nobody can use up
//! another's.
//!
//! `/oauth/authorize` needs only a client id and one of its redirect URIs, both visible in any
//! browser's address bar, so anyone can open consent requests for any brand. A single table with
//! one limit let 1,000 anonymous requests block every brand's flow for ten minutes. Instead, each
//! pending request belongs to two buckets, its client's address and its brand, each with a small
//! budget ([`PER_ADDRESS`], [`PER_BRAND`]). A new request that would overfill a bucket makes room
//! by evicting the oldest request *of that same bucket*: a flood from one address displaces only
//! that address's own requests, and a flood aimed at one brand only that brand's, never another
//! brand's. Evicting rather than refusing keeps the newest request (the one a person has just
//! started) alive, and makes an attacker keep sending to keep a bucket full. Everything pending is
//! thus bounded by `PER_BRAND` times the number of registered brands, which only the owner's
//! invitations create.
//!
//! IPv6 clients are counted by their /64 prefix: one host usually holds a whole /64 and could
//! otherwise take a fresh address for every request.

use std::net::IpAddr;

/// Consent requests one client address (an IPv6 /64) may have pending at once.
pub const PER_ADDRESS: usize = 10;
/// Consent requests one brand may have pending at once.
pub const PER_BRAND: usize = 100;

/// The bucket of a client address: the address itself, or the /64 network of an IPv6 address.
pub fn address_bucket(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

/// A pending consent request as the budget sees it.
#[derive(Debug, Clone, Copy)]
pub struct PendingSlot<'a> {
    pub id: &'a str,
    pub brand: &'a str,
    pub address: IpAddr,
    /// When it arrived, as a sequence number (clock readings can tie).
    pub arrival: u64,
}

/// The requests to evict (oldest first) so that one more request from `address` for `brand` fits
/// both budgets.
pub fn make_room<'a>(pending: &[PendingSlot<'a>], brand: &str, address: IpAddr) -> Vec<&'a str> {
    let bucket = address_bucket(address);
    let mut oldest_first: Vec<&PendingSlot<'a>> = pending.iter().collect();
    oldest_first.sort_by_key(|slot| slot.arrival);
    let mut evict: Vec<&'a str> = Vec::new();
    let same_address: Vec<&PendingSlot<'a>> = oldest_first
        .iter()
        .copied()
        .filter(|slot| address_bucket(slot.address) == bucket)
        .collect();
    let excess = (same_address.len() + 1).saturating_sub(PER_ADDRESS);
    evict.extend(same_address.iter().take(excess).map(|slot| slot.id));
    let same_brand: Vec<&PendingSlot<'a>> = oldest_first
        .iter()
        .copied()
        .filter(|slot| slot.brand == brand && !evict.contains(&slot.id))
        .collect();
    let excess = (same_brand.len() + 1).saturating_sub(PER_BRAND);
    evict.extend(same_brand.iter().take(excess).map(|slot| slot.id));
    evict
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A pending table driven only through `make_room`, as the service drives it.
    #[derive(Default)]
    struct Table {
        slots: HashMap<String, (String, IpAddr, u64)>,
        next: u64,
    }

    impl Table {
        fn add(&mut self, brand: &str, address: &str) -> String {
            let address: IpAddr = address.parse().unwrap();
            let slots: Vec<PendingSlot<'_>> = self
                .slots
                .iter()
                .map(|(id, (b, a, n))| PendingSlot {
                    id,
                    brand: b,
                    address: *a,
                    arrival: *n,
                })
                .collect();
            let evict: Vec<String> = make_room(&slots, brand, address)
                .into_iter()
                .map(str::to_owned)
                .collect();
            for id in evict {
                self.slots.remove(&id);
            }
            self.next += 1;
            let id = format!("c{}", self.next);
            self.slots
                .insert(id.clone(), (brand.to_owned(), address, self.next));
            id
        }

        fn count(&self, brand: &str) -> usize {
            self.slots.values().filter(|(b, _, _)| b == brand).count()
        }
    }

    #[test]
    fn a_flood_from_one_address_displaces_only_its_own_requests() {
        let mut table = Table::default();
        let honest = table.add("brand-b", "198.51.100.7");
        let flood: Vec<String> = (0..1_000)
            .map(|_| table.add("brand-a", "203.0.113.66"))
            .collect();
        assert_eq!(table.count("brand-a"), PER_ADDRESS);
        // The newest of the flood are kept, the oldest evicted; the other brand's is untouched.
        for (n, id) in flood.iter().enumerate() {
            assert_eq!(table.slots.contains_key(id), n >= 1_000 - PER_ADDRESS);
        }
        assert!(table.slots.contains_key(&honest));
    }

    #[test]
    fn a_flood_aimed_at_one_brand_from_many_addresses_leaves_other_brands_alone() {
        let mut table = Table::default();
        let honest = table.add("brand-b", "198.51.100.7");
        for n in 0..1_000u32 {
            let address = format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255);
            table.add("brand-a", &address);
        }
        assert_eq!(table.count("brand-a"), PER_BRAND);
        assert!(table.slots.contains_key(&honest));
        // And brand b still takes new requests, up to its own budget.
        let later = table.add("brand-b", "198.51.100.8");
        assert!(table.slots.contains_key(&later));
        assert_eq!(table.count("brand-b"), 2);
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64_and_cannot_rotate_around_the_budget() {
        let mut table = Table::default();
        for n in 0..100 {
            table.add("brand-a", &format!("2001:db8:1:2::{n:x}"));
        }
        assert_eq!(table.count("brand-a"), PER_ADDRESS);
        assert_eq!(
            address_bucket("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            address_bucket("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
