//! Replaced values handed elsewhere to be freed: a side channel, not state.
//!
//! A restart applies its whole log again while another thread reads and decodes the commands
//! ahead, so each value is allocated on that thread and, once a later write replaces it,
//! freed on the applying one. Memory freed across threads goes back through the allocator's
//! shared bins, and that bookkeeping cost both threads more than the frees themselves. While
//! a sink is set, the strings that writes replace are kept instead, and handed to the sink in
//! batches — the server hands them back to the thread that decoded them, whose allocator then
//! reuses their memory for the next values it decodes. Only strings of at most
//! [`REPLACED_MAX_VALUE_BYTES`] go this way (a larger allocation bypasses the allocator's
//! thread cache anyway, and a hash would have to be walked to be sized), and a batch is handed
//! over at [`REPLACED_BATCH`] states or [`REPLACED_BATCH_BYTES`] bytes of values, whichever
//! comes first: what is held apart stays small whatever the values' sizes.

use crate::keyspace::Stored;
use crate::value::Value;

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
pub type ReplacedSink = Box<dyn FnMut(ReplacedValues) + Send + Sync>;

/// The most replaced states in one batch.
pub const REPLACED_BATCH: usize = 1024;

/// A batch is handed over once its values hold this many bytes, however few they are.
pub const REPLACED_BATCH_BYTES: usize = 1 << 20;

/// Replaced strings longer than this are freed in place.
pub const REPLACED_MAX_VALUE_BYTES: usize = 16 * 1024;

/// The sink, if one is set, and the states kept for its next batch.
#[derive(Default)]
pub(crate) struct Replaced {
    sink: Option<ReplacedSink>,
    kept: Vec<Stored>,
    /// The bytes of the values in `kept`.
    kept_bytes: usize,
}

impl Replaced {
    /// `state` was replaced: kept for the sink if it is a short string and a sink is set,
    /// else dropped here.
    pub(crate) fn keep(&mut self, state: Stored) {
        let Some(sink) = &mut self.sink else {
            return;
        };
        let bytes = match &state.value {
            Value::String(bytes) if bytes.len() <= REPLACED_MAX_VALUE_BYTES => bytes.len(),
            _ => return,
        };
        self.kept.push(state);
        self.kept_bytes += bytes;
        if self.kept.len() >= REPLACED_BATCH || self.kept_bytes >= REPLACED_BATCH_BYTES {
            let batch = std::mem::replace(&mut self.kept, Vec::with_capacity(REPLACED_BATCH));
            self.kept_bytes = 0;
            sink(ReplacedValues(batch));
        }
    }

    /// Whether replaced strings are freed here, on the applying thread, so that the
    /// allocator hands their memory to the next values decoded here: no sink is set. (With
    /// one, only hashes and strings over [`REPLACED_MAX_VALUE_BYTES`] are freed here.)
    pub(crate) fn frees_here(&self) -> bool {
        self.sink.is_none()
    }

    /// Sets the sink (or, with `None`, frees here from now on); what the old sink had not
    /// been handed is handed to it first.
    pub(crate) fn set_sink(&mut self, sink: Option<ReplacedSink>) {
        let kept = std::mem::take(&mut self.kept);
        self.kept_bytes = 0;
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
        set_sized(machine, index, key, value, 64);
    }

    fn set_sized(machine: &mut StateMachine, index: u64, key: u64, value: u8, len: usize) {
        let command = Command::Set {
            key: format!("key:{key}").into_bytes(),
            value: vec![value; len],
            condition: crate::SetCondition::Always,
        };
        machine.apply_at(index, None, command, None);
    }

    /// The sizes of the batches a sink was handed: (states, bytes of values).
    type Handed = Arc<Mutex<Vec<(usize, usize)>>>;

    /// A machine whose replaced values go to a list of batch sizes.
    fn collecting() -> (StateMachine, Handed) {
        let mut machine = StateMachine::new(KvConfig::default()).unwrap();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        machine.set_replaced_sink(Some(Box::new(move |values: super::ReplacedValues| {
            let bytes = values
                .0
                .iter()
                .map(|state| state.value.payload_bytes())
                .sum();
            seen.lock().unwrap().push((values.len(), bytes));
        })));
        (machine, batches)
    }

    /// What is held apart is bounded in bytes as well as in states: 8 KiB values make
    /// batches of 1 MiB (128 of them), not of 1,024; values over the limit are freed in place.
    #[test]
    fn batches_are_bounded_in_bytes_and_large_values_are_freed_in_place() {
        let (mut machine, batches) = collecting();
        for index in 1..=300 {
            set_sized(&mut machine, index, 1, index as u8, 8 * 1024);
        }
        assert_eq!(
            *batches.lock().unwrap(),
            vec![
                (128, super::REPLACED_BATCH_BYTES),
                (128, super::REPLACED_BATCH_BYTES)
            ]
        );
        batches.lock().unwrap().clear();
        for index in 301..=400 {
            set_sized(
                &mut machine,
                index,
                2,
                0,
                super::REPLACED_MAX_VALUE_BYTES + 1,
            );
        }
        machine.set_replaced_sink(None);
        // The first of key 2's writes replaced nothing; the 99 large ones went nowhere; what
        // was held of key 1 (43 states) was handed over when the sink was taken away.
        assert_eq!(*batches.lock().unwrap(), vec![(43, 43 * 8 * 1024)]);
    }

    /// A value that a frozen copy of the store still shares is not handed anywhere (the copy
    /// keeps it), and FLUSHALL keeps the sink.
    #[test]
    fn values_shared_with_a_copy_stay_and_flushall_keeps_the_sink() {
        let (mut machine, batches) = collecting();
        for index in 1..=20 {
            set(&mut machine, index, index, 1);
        }
        let copy = machine.clone();
        for index in 21..=40 {
            set(&mut machine, index, index - 20, 2);
        }
        drop(copy);
        machine.apply_at(41, None, Command::FlushAll, None);
        for index in 42..=2000 {
            set(&mut machine, index, 1, index as u8);
        }
        machine.set_replaced_sink(None);
        let handed: usize = batches.lock().unwrap().iter().map(|(n, _)| n).sum();
        assert_eq!(
            handed,
            2000 - 42,
            "only the writes after the flush replaced a value here"
        );
    }

    /// While a sink is set, every value a SET replaces reaches it, in full batches and the
    /// rest when the sink is taken away, and the store is the same as one that freed them.
    #[test]
    fn replaced_values_reach_the_sink_in_batches_and_the_store_is_unchanged() {
        let mut machine = StateMachine::new(KvConfig::default()).unwrap();
        let mut freeing = StateMachine::new(KvConfig::default()).unwrap();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        machine.set_replaced_sink(Some(Box::new(move |values: super::ReplacedValues| {
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
