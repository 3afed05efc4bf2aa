//! This node's client connections, for `CLIENT ID`, `CLIENT LIST` and `CLIENT INFO`: each
//! connection has an id unique on this node (never reused while the process lives), its
//! addresses, its age, and the name and library details it gave.
//!
//! Bounded: one entry per connection (at most `max_clients`), and names and library details
//! at most 256 bytes each (checked when they are parsed).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The connections this node serves.
#[derive(Default)]
pub(super) struct Registry {
    /// The id the next connection gets (ids start at 1).
    last_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientSlot>>>,
}

/// What a client told about itself.
#[derive(Default, Clone)]
struct Details {
    name: Option<Vec<u8>>,
    lib_name: Option<Vec<u8>>,
    lib_ver: Option<Vec<u8>>,
}

/// One connection's entry.
pub(super) struct ClientSlot {
    id: u64,
    addr: SocketAddr,
    local_addr: Option<SocketAddr>,
    connected: Instant,
    details: Mutex<Details>,
}

/// A connection's place in the [`Registry`], left when it is dropped.
pub(super) struct Registered {
    registry: Arc<Registry>,
    slot: Arc<ClientSlot>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays consistent whatever panicked while holding it: plain fields only.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    /// Enters a new connection from `addr` to `local_addr`.
    pub(super) fn register(
        self: &Arc<Self>,
        addr: SocketAddr,
        local_addr: Option<SocketAddr>,
    ) -> Registered {
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = Arc::new(ClientSlot {
            id,
            addr,
            local_addr,
            connected: Instant::now(),
            details: Mutex::default(),
        });
        lock(&self.clients).insert(id, slot.clone());
        Registered {
            registry: self.clone(),
            slot,
        }
    }

    /// `CLIENT LIST`: one line per connection, in id order (only `ids` when given).
    pub(super) fn list(&self, ids: Option<&[u64]>) -> Vec<u8> {
        let slots: Vec<Arc<ClientSlot>> = match ids {
            None => lock(&self.clients).values().cloned().collect(),
            Some(ids) => {
                let clients = lock(&self.clients);
                ids.iter()
                    .filter_map(|id| clients.get(id).cloned())
                    .collect()
            }
        };
        let mut out = Vec::new();
        for slot in slots {
            slot.describe(&mut out);
        }
        out
    }
}

impl Registered {
    /// This connection's id.
    pub(super) fn id(&self) -> u64 {
        self.slot.id
    }

    /// `CLIENT SETNAME` (an empty name clears it).
    pub(super) fn set_name(&self, name: Vec<u8>) {
        lock(&self.slot.details).name = Some(name).filter(|name| !name.is_empty());
    }

    /// `CLIENT GETNAME`.
    pub(super) fn name(&self) -> Option<Vec<u8>> {
        lock(&self.slot.details).name.clone()
    }

    /// `CLIENT SETINFO LIB-NAME|LIB-VER`.
    pub(super) fn set_lib(&self, lib_name: bool, value: Vec<u8>) {
        let mut details = lock(&self.slot.details);
        let field = if lib_name {
            &mut details.lib_name
        } else {
            &mut details.lib_ver
        };
        *field = Some(value).filter(|value| !value.is_empty());
    }

    /// `RESET`: the name and library details go.
    pub(super) fn forget_details(&self) {
        *lock(&self.slot.details) = Details::default();
    }

    /// `CLIENT INFO`: this connection's line of `CLIENT LIST`.
    pub(super) fn info(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.slot.describe(&mut out);
        out
    }

    /// The registry this connection is in.
    pub(super) fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.registry.clients).remove(&self.slot.id);
    }
}

impl ClientSlot {
    /// Appends this connection's line, in Redis's `field=value` form.
    fn describe(&self, out: &mut Vec<u8>) {
        let details = lock(&self.details).clone();
        let text = |value: &Option<Vec<u8>>| value.clone().unwrap_or_default();
        let local = self
            .local_addr
            .map(|addr| addr.to_string())
            .unwrap_or_default();
        out.extend_from_slice(
            format!("id={} addr={} laddr={} name=", self.id, self.addr, local).as_bytes(),
        );
        out.extend_from_slice(&text(&details.name));
        out.extend_from_slice(
            format!(
                " age={} db=0 flags=N user=default lib-name=",
                self.connected.elapsed().as_secs()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&text(&details.lib_name));
        out.extend_from_slice(b" lib-ver=");
        out.extend_from_slice(&text(&details.lib_ver));
        out.extend_from_slice(b" resp=2\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn ids_are_unique_and_a_closed_connection_leaves_the_list() {
        let registry = Arc::new(Registry::default());
        let first = registry.register(addr(1000), Some(addr(6379)));
        let second = registry.register(addr(1001), None);
        assert_ne!(first.id(), second.id());
        first.set_name(b"worker-1".to_vec());
        second.set_lib(true, b"redis-py".to_vec());
        let list = String::from_utf8(registry.list(None)).expect("text");
        assert_eq!(list.lines().count(), 2, "{list}");
        assert!(
            list.contains(&format!(
                "id={} addr=127.0.0.1:1000 laddr=127.0.0.1:6379 name=worker-1 ",
                first.id()
            )),
            "{list}"
        );
        assert!(list.contains("lib-name=redis-py"), "{list}");
        let first_id = first.id();
        drop(first);
        let third = registry.register(addr(1002), None);
        assert!(third.id() > second.id(), "ids are never reused");
        let list = String::from_utf8(registry.list(None)).expect("text");
        assert!(!list.contains(&format!("id={first_id} ")), "{list}");
        assert_eq!(registry.list(Some(&[first_id])), b"");
        second.set_name(Vec::new());
        assert_eq!(second.name(), None, "an empty name clears it");
    }
}
