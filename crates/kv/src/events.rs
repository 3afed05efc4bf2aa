//! Keyspace events: what each applied entry did to which key, named as Redis names them
//! in its keyspace notifications (`set`, `del`, `expire`, `expired`, `incrby`, `hset`…).
//!
//! Every write command reports through [`StateMachine::notify`] as it changes a key, and
//! expiry at apply reports `expired`; whoever publishes notifications collects the events.

use crate::state_machine::StateMachine;

impl StateMachine {
    /// Reports that the event `event` happened to `key` in the entry being applied.
    #[allow(dead_code)] // until the write commands report their events
    pub(crate) fn notify(&mut self, event: &'static str, key: &[u8]) {
        let _ = (event, key);
    }
}
