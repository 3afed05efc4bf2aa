//! Keyspace notifications: after the node applies a batch, the events it recorded go to
//! this node's subscribers, in log order; and the state machine records them only while the
//! setting publishes something and some connection subscribes.

use super::Driver;

impl Driver {
    /// Hands what was just applied to the publisher, and turns the recording on or off for
    /// what comes next (a snapshot installed since brings a state machine that records
    /// nothing: it is turned on again here).
    pub(super) fn publish_keyspace_events(&mut self) {
        let hub = &self.shared.pubsub;
        let state_machine = self.node.state_machine_mut();
        if state_machine.records_events() {
            hub.publish(state_machine.take_events());
        }
        let wanted = hub.wants_events();
        if state_machine.records_events() != wanted {
            state_machine.record_events(wanted);
        }
    }
}
