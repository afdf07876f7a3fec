//! Open connections per client address, so one peer cannot take every
//! slot of a listener. IPv6 clients are counted by their /64 (one home
//! line or one host's block), IPv4-mapped IPv6 addresses as IPv4.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Shards of the count map (fewer lock collisions under many accepts).
const SHARDS: usize = 16;

/// What a client is counted by: its IPv4 address or its IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u64),
}

impl Client {
    fn of(ip: IpAddr) -> Client {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Client::V4(v4.into()),
            IpAddr::V6(v6) => Client::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Connections open per client, at most `max` each.
#[derive(Debug)]
pub struct PerIp {
    /// Most connections one client may hold.
    max: usize,
    /// Picks a client's shard.
    hasher: RandomState,
    /// Open connections per client (no entry: none).
    shards: Vec<Mutex<HashMap<Client, usize>>>,
}

/// One open connection of a client; dropping it frees its place.
#[derive(Debug)]
pub struct PerIpGuard {
    counts: Arc<PerIp>,
    client: Client,
}

impl PerIp {
    /// At most `max` connections per client.
    pub fn new(max: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            max,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    fn shard(&self, client: Client) -> &Mutex<HashMap<Client, usize>> {
        let index = self.hasher.hash_one(client) as usize % SHARDS;
        &self.shards[index]
    }

    /// A place for one more connection from `ip`, or `None` when it has
    /// `max` open already.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PerIpGuard> {
        let client = Client::of(ip);
        let mut counts = self.shard(client).lock().unwrap_or_else(|e| e.into_inner());
        let open = counts.entry(client).or_insert(0);
        if *open >= self.max {
            return None;
        }
        *open += 1;
        Some(PerIpGuard {
            counts: self.clone(),
            client,
        })
    }
}

impl Drop for PerIpGuard {
    fn drop(&mut self) {
        let shard = self.counts.shard(self.client);
        let mut counts = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = counts.get_mut(&self.client) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_max_places_and_gets_them_back() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = per_ip.try_acquire(a).unwrap();
        let _second = per_ip.try_acquire(a).unwrap();
        assert!(per_ip.try_acquire(a).is_none());
        // The same address as IPv4-mapped IPv6 is the same client.
        assert!(per_ip
            .try_acquire("::ffff:10.0.0.1".parse().unwrap())
            .is_none());
        assert!(per_ip.try_acquire("10.0.0.2".parse().unwrap()).is_some());
        drop(first);
        assert!(per_ip.try_acquire(a).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let per_ip = PerIp::new(1);
        let _held = per_ip
            .try_acquire("2001:db8:1:2::1".parse().unwrap())
            .unwrap();
        assert!(per_ip
            .try_acquire("2001:db8:1:2:ffff::9".parse().unwrap())
            .is_none());
        assert!(per_ip
            .try_acquire("2001:db8:1:3::1".parse().unwrap())
            .is_some());
    }

    #[test]
    fn released_clients_leave_no_entry() {
        let per_ip = PerIp::new(3);
        for i in 0..100u8 {
            drop(per_ip.try_acquire(IpAddr::from([10, 0, 0, i])));
        }
        let entries: usize = per_ip.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert_eq!(entries, 0);
    }
}
