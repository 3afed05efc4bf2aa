//! Replaced values handed elsewhere to be freed: a side channel, not state.
//!
//! A restart applies its whole log again while another thread reads and decodes the commands
//! ahead, so each value is allocated on that thread and, once a later write replaces it,
//! freed on the applying one. Memory freed across threads goes back through the allocator's
//! shared bins, and that bookkeeping cost both threads more than the frees themselves. While
//! a sink is set, the states that writes replace are kept instead, and handed to the sink in
//! batches — the server hands them back to the thread that decoded them, whose allocator then
//! reuses their memory for the next values it decodes.

use crate::keyspace::Stored;

/// States that writes replaced, in one batch: dropping it frees them.
pub struct ReplacedValues(Vec<Stored>);

impl ReplacedValues {
    /// How many states the batch holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the batch holds none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Frees one state of the batch; `false` if none was left.
    pub fn free_one(&mut self) -> bool {
        self.0.pop().is_some()
    }
}

impl std::fmt::Debug for ReplacedValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplacedValues({})", self.0.len())
    }
}

/// Where batches of replaced values go ([`StateMachine::set_replaced_sink`]).
///
/// [`StateMachine::set_replaced_sink`]: crate::state_machine::StateMachine::set_replaced_sink
pub type ReplacedSink = Box<dyn FnMut(ReplacedValues) + Send>;

/// How many replaced states make a batch: at most this many are held here.
pub const REPLACED_BATCH: usize = 1024;

/// The sink, if one is set, and the states kept for its next batch.
#[derive(Default)]
pub(crate) struct Replaced {
    sink: Option<ReplacedSink>,
    kept: Vec<Stored>,
}

impl Replaced {
    /// `state` was replaced: dropped here, or kept for the sink.
    pub(crate) fn keep(&mut self, state: Stored) {
        let Some(sink) = &mut self.sink else {
            return;
        };
        self.kept.push(state);
        if self.kept.len() >= REPLACED_BATCH {
            let batch = std::mem::replace(&mut self.kept, Vec::with_capacity(REPLACED_BATCH));
            sink(ReplacedValues(batch));
        }
    }

    /// Sets the sink (or, with `None`, frees here from now on); what the old sink had not
    /// been handed is handed to it first.
    pub(crate) fn set_sink(&mut self, sink: Option<ReplacedSink>) {
        let kept = std::mem::take(&mut self.kept);
        if let (Some(old), false) = (&mut self.sink, kept.is_empty()) {
            old(ReplacedValues(kept));
        }
        self.kept = Vec::with_capacity(if sink.is_some() { REPLACED_BATCH } else { 0 });
        self.sink = sink;
    }
}

/// A copy of the store hands nothing anywhere.
impl Clone for Replaced {
    fn clone(&self) -> Replaced {
        Replaced::default()
    }
}

/// Not state: two stores are equal whatever their sinks.
impl PartialEq for Replaced {
    fn eq(&self, _: &Replaced) -> bool {
        true
    }
}

impl Eq for Replaced {}

impl std::fmt::Debug for Replaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replaced")
            .field("sink", &self.sink.is_some())
            .field("kept", &self.kept.len())
            .finish()
    }
}

impl crate::state_machine::StateMachine {
    /// Hands the states that writes replace to `sink`, in batches of [`REPLACED_BATCH`],
    /// instead of freeing them here; `None` frees them here again (handing what is held to
    /// the old sink first). A side channel, like the keyspace events: what is applied, and
    /// every reply, stay the same.
    pub fn set_replaced_sink(&mut self, sink: Option<ReplacedSink>) {
        self.data.set_replaced_sink(sink);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use crate::{Command, KvConfig, StateMachine};

    fn set(machine: &mut StateMachine, index: u64, key: u64, value: u8) {
        let command = Command::Set {
            key: format!("key:{key}").into_bytes(),
            value: vec![value; 64],
            condition: crate::SetCondition::Always,
        };
        machine.apply_at(index, None, command, None);
    }

    /// While a sink is set, every value a SET replaces reaches it, in full batches and the
    /// rest when the sink is taken away, and the store is the same as one that freed them.
    #[test]
    fn replaced_values_reach_the_sink_in_batches_and_the_store_is_unchanged() {
        let mut machine = StateMachine::new(KvConfig::default()).unwrap();
        let mut freeing = StateMachine::new(KvConfig::default()).unwrap();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        machine.set_replaced_sink(Some(Box::new(move |values| {
            seen.lock().unwrap().push(values.len())
        })));
        let writes = 3 * super::REPLACED_BATCH as u64 + 10;
        for index in 1..=writes {
            // Ten keys: all but the first ten writes replace a value.
            set(&mut machine, index, index % 10, index as u8);
            set(&mut freeing, index, index % 10, index as u8);
        }
        assert_eq!(*batches.lock().unwrap(), vec![super::REPLACED_BATCH; 3]);
        machine.set_replaced_sink(None);
        let replaced: usize = batches.lock().unwrap().iter().sum();
        assert_eq!(replaced as u64, writes - 10, "every replaced value, once");
        assert!(machine == freeing, "the sink changes no state");
        // Without a sink nothing more is handed anywhere.
        set(&mut machine, writes + 1, 1, 0);
        assert_eq!(batches.lock().unwrap().iter().sum::<usize>(), replaced);
    }
}
