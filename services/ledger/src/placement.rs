//! Choosing bookies for an ensemble, or a replacement in one.
//!
//! Only writable bookies are candidates (never read-only, full or decommissioning ones, nor
//! any the caller excludes). Each pick takes the zone with the fewest members in the ensemble so
//! far — so an ensemble spreads across zones when zones are configured and a zone outage takes
//! the fewest replicas — and within it the least-used bookie by disk, ties broken by the seeded
//! random source the caller passes (deterministic in tests and simulation).

use std::collections::{BTreeMap, HashSet};

use dlog_api::BookieId;

use crate::registry::{BookieRegistration, RegisteredState};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not enough writable bookies: need {needed}, {available} available ({why})")]
pub struct PlacementError {
    pub needed: usize,
    pub available: usize,
    pub why: String,
}

/// Picks `n` bookies from `candidates`, none of them in `exclude`, spreading across zones
/// counting the zones of `keep` (the ensemble members that stay).
pub fn choose(
    candidates: &[BookieRegistration],
    n: usize,
    keep: &[BookieId],
    exclude: &HashSet<BookieId>,
    rng: &mut fastrand::Rng,
) -> Result<Vec<BookieId>, PlacementError> {
    let mut pool: Vec<&BookieRegistration> = candidates
        .iter()
        .filter(|b| b.state == RegisteredState::Writable)
        .filter(|b| !exclude.contains(&b.id) && !keep.contains(&b.id))
        .collect();
    if pool.len() < n {
        let writable = candidates
            .iter()
            .filter(|b| b.state == RegisteredState::Writable)
            .count();
        return Err(PlacementError {
            needed: n,
            available: pool.len(),
            why: format!(
                "{} registered, {writable} writable, {} excluded or already in the ensemble",
                candidates.len(),
                writable - pool.len()
            ),
        });
    }
    // Random order first, so that equal choices are spread; then the rules decide.
    rng.shuffle(&mut pool);
    let zone_of: BTreeMap<&BookieId, &str> = candidates
        .iter()
        .map(|b| (&b.id, b.zone.as_str()))
        .collect();
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for k in keep {
        if let Some(z) = zone_of.get(k) {
            *per_zone.entry(z).or_default() += 1;
        }
    }
    let mut chosen = Vec::with_capacity(n);
    for _ in 0..n {
        let (i, _) = pool
            .iter()
            .enumerate()
            .min_by_key(|(_, b)| {
                let in_zone = per_zone.get(b.zone.as_str()).copied().unwrap_or(0);
                let used = if b.disk_total == 0 {
                    0
                } else {
                    (b.disk_used as u128 * 1000 / b.disk_total as u128) as u64
                };
                (in_zone, used)
            })
            .expect("pool has at least n bookies");
        let b = pool.swap_remove(i);
        *per_zone.entry(b.zone.as_str()).or_default() += 1;
        chosen.push(b.id.clone());
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: &str, zone: &str, state: RegisteredState, used: u64) -> BookieRegistration {
        BookieRegistration {
            id: BookieId::new(id).unwrap(),
            address: format!("{id}:3181"),
            zone: zone.into(),
            instance_id: 1,
            state,
            disk_total: 100,
            disk_used: used,
        }
    }

    fn ids(v: &[BookieId]) -> Vec<&str> {
        v.iter().map(|b| b.as_str()).collect()
    }

    #[test]
    fn ensembles_spread_across_zones_and_skip_unwritable_bookies() {
        use RegisteredState::*;
        let c = vec![
            reg("a1", "a", Writable, 10),
            reg("a2", "a", Writable, 10),
            reg("b1", "b", Writable, 10),
            reg("b2", "b", ReadOnly, 10),
            reg("c1", "c", Decommissioning, 10),
            reg("c2", "c", Writable, 90),
        ];
        for seed in 0..50 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let e = choose(&c, 3, &[], &HashSet::new(), &mut rng).unwrap();
            let mut z: Vec<_> = ids(&e).iter().map(|s| &s[..1]).collect();
            z.sort();
            assert_eq!(z, ["a", "b", "c"], "seed {seed}: {e:?}");
        }
        // A replacement for the zone-b member goes to zone b if it can (b2 is read-only: no),
        // else to the least used of the rest.
        let keep = [BookieId::new("a1").unwrap(), BookieId::new("c2").unwrap()];
        let exclude: HashSet<_> = [BookieId::new("b1").unwrap()].into();
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(
            ids(&choose(&c, 1, &keep, &exclude, &mut rng).unwrap()),
            ["a2"]
        );
        let e = choose(&c, 5, &[], &HashSet::new(), &mut rng).unwrap_err();
        assert_eq!((e.needed, e.available), (5, 4));
        let e = choose(&c, 3, &keep, &exclude, &mut rng).unwrap_err();
        assert_eq!((e.needed, e.available), (3, 1));
    }

    #[test]
    fn without_zones_the_least_used_bookies_win() {
        let c: Vec<_> = (0..6)
            .map(|i| reg(&format!("b{i}"), "", RegisteredState::Writable, 60 - 10 * i))
            .collect();
        let mut rng = fastrand::Rng::with_seed(3);
        let mut e = ids(&choose(&c, 3, &[], &HashSet::new(), &mut rng).unwrap())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        e.sort();
        assert_eq!(e, ["b3", "b4", "b5"]);
    }
}
