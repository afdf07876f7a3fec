//! Admin resets across sidecars: the sidecar that resets a key clears the
//! shared store, then announces the counter keys so that every sidecar
//! (itself included) forgets what it alone keeps of them — cached denials,
//! fallback counters — at once.

use std::sync::{Arc, RwLock};

use crate::store::Store;

/// Carries reset announcements to every sidecar (Redis pub/sub in
/// production). Fire and forget: a lost announcement leaves a sidecar's
/// cached denial of that key until it lapses by itself.
pub trait ResetBus: Send + Sync {
    /// Announces that these counter keys were reset.
    fn publish(&self, keys: Vec<String>);
}

/// This sidecar's end of the reset announcements.
pub struct Resets {
    /// Whose local state to forget.
    store: Arc<dyn Store>,
    /// Where announcements go; `None` until connected (or with a store
    /// that is not shared).
    bus: RwLock<Option<Arc<dyn ResetBus>>>,
}

impl Resets {
    /// Announcements for `store`, with no bus yet.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Resets {
            store,
            bus: RwLock::new(None),
        }
    }

    /// Installs the bus announcements go through.
    pub fn set_bus(&self, bus: Arc<dyn ResetBus>) {
        *self.bus.write().unwrap_or_else(|e| e.into_inner()) = Some(bus);
    }

    /// Whether announcements reach other sidecars.
    pub fn connected(&self) -> bool {
        self.bus.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Forgets `keys` here at once and announces them to every sidecar.
    pub fn announce(&self, keys: Vec<String>) {
        let borrowed: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.store.forget(&borrowed);
        let bus = self.bus.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(bus) = bus {
            bus.publish(keys);
        }
    }

    /// Applies an announcement received from any sidecar: the counter keys,
    /// one a line.
    pub fn received(&self, message: &str) {
        let keys: Vec<&str> = message.lines().filter(|k| !k.is_empty()).collect();
        self.store.forget(&keys);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{LocalConfig, LocalStore, Source};
    use floodgate_core::{ManualClock, Policy, PolicySpec};

    struct Recorded(Mutex<Vec<Vec<String>>>);

    impl ResetBus for Recorded {
        fn publish(&self, keys: Vec<String>) {
            self.0.lock().unwrap().push(keys);
        }
    }

    #[test]
    fn an_announcement_forgets_here_and_is_published() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let local = Arc::new(LocalStore::new(
            LocalConfig::default(),
            clock,
            Source::Local,
        ));
        let policy = Policy::new(PolicySpec {
            name: "p".into(),
            key: vec!["user".into()],
            limit: 1,
            window_us: Some(60_000_000),
            ..PolicySpec::default()
        })
        .unwrap();
        assert!(local.check_one(&policy, "p:u1", 1).allowed);
        assert!(!local.check_one(&policy, "p:u1", 1).allowed);
        let resets = Resets::new(local.clone());
        assert!(!resets.connected());
        let bus = Arc::new(Recorded(Mutex::new(Vec::new())));
        resets.set_bus(bus.clone());
        resets.announce(vec!["p:u1".into()]);
        assert!(local.check_one(&policy, "p:u1", 1).allowed);
        assert_eq!(*bus.0.lock().unwrap(), vec![vec!["p:u1".to_string()]]);
        resets.received("p:u1\n\n");
        assert!(local.check_one(&policy, "p:u1", 1).allowed);
    }
}
