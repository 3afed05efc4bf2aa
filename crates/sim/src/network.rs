//! The simulated network: loss, delay, long reordering, duplication and partitions of any
//! shape (the fault model of docs/TESTING.md).

use std::collections::BTreeSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use skiff_raft::NodeId;

/// How the network misbehaves.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkOptions {
    /// Probability that a request is lost.
    pub request_loss: f64,
    /// Probability that a response is lost.
    pub response_loss: f64,
    /// Every message is delayed uniformly within this range (milliseconds).
    pub delay_ms: (u64, u64),
    /// Probability that a response is held back for a long time (long reordering).
    pub long_delay_probability: f64,
    /// The range of such long delays (milliseconds).
    pub long_delay_ms: (u64, u64),
    /// Probability that a message is delivered twice.
    pub duplicate_probability: f64,
}

impl NetworkOptions {
    /// A network that delivers everything in a few milliseconds.
    pub fn reliable() -> NetworkOptions {
        NetworkOptions {
            request_loss: 0.0,
            response_loss: 0.0,
            delay_ms: (1, 5),
            long_delay_probability: 0.0,
            long_delay_ms: (200, 2200),
            duplicate_probability: 0.0,
        }
    }

    /// The unreliable network of the fault model: 10% loss each way, 0–27 ms delay, about
    /// two thirds of responses held back 200–2200 ms, and some duplication.
    pub fn unreliable() -> NetworkOptions {
        NetworkOptions {
            request_loss: 0.1,
            response_loss: 0.1,
            delay_ms: (0, 27),
            long_delay_probability: 0.66,
            long_delay_ms: (200, 2200),
            duplicate_probability: 0.02,
        }
    }
}

/// The shape of a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partition {
    /// One node cut off from all others.
    Isolate(NodeId),
    /// Two sides that cannot talk to each other.
    Split(Vec<NodeId>),
    /// Each node sees a majority, but every node a different one.
    MajoritiesRing,
    /// Two halves that only `bridge` can talk to.
    Bridge(NodeId),
    /// Messages from the first node to the second are lost; the other way works.
    OneWay(NodeId, NodeId),
}

/// The network between the simulated nodes.
#[derive(Debug)]
pub struct Network {
    /// What the network does to each message.
    pub options: NetworkOptions,
    /// Directed links that lose everything.
    blocked: BTreeSet<(NodeId, NodeId)>,
}

/// What happens to one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Delivered after each of these delays (more than one when duplicated).
    Deliver(Vec<u64>),
    /// Lost, for this reason.
    Lost(&'static str),
}

impl Network {
    /// A fully connected network.
    pub fn new(options: NetworkOptions) -> Network {
        Network {
            options,
            blocked: BTreeSet::new(),
        }
    }

    /// Whether messages from `from` to `to` get through the partition.
    pub fn connected(&self, from: NodeId, to: NodeId) -> bool {
        !self.blocked.contains(&(from, to))
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Restores every link to and from `node`.
    pub fn reconnect(&mut self, node: NodeId) {
        self.blocked
            .retain(|&(from, to)| from != node && to != node);
    }

    /// Cuts the directed link from `from` to `to`.
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.blocked.insert((from, to));
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Applies `partition` over the nodes `ids` (in addition to existing cuts).
    pub fn partition(&mut self, ids: &[NodeId], partition: &Partition) {
        match partition {
            Partition::Isolate(node) => {
                for &other in ids.iter().filter(|&&id| id != *node) {
                    self.cut(*node, other);
                }
            }
            Partition::Split(side) => {
                for &a in side {
                    for &b in ids.iter().filter(|id| !side.contains(id)) {
                        self.cut(a, b);
                    }
                }
            }
            Partition::MajoritiesRing => {
                let n = ids.len();
                let majority = n / 2 + 1;
                let reach = (majority - 1).div_ceil(2);
                for (i, &a) in ids.iter().enumerate() {
                    for (j, &b) in ids.iter().enumerate() {
                        let distance = (i + n - j) % n;
                        if distance.min(n - distance) > reach {
                            self.cut_one_way(a, b);
                        }
                    }
                }
            }
            Partition::Bridge(bridge) => {
                let others: Vec<NodeId> = ids.iter().copied().filter(|id| id != bridge).collect();
                let (left, right) = others.split_at(others.len() / 2);
                for &a in left {
                    for &b in right {
                        self.cut(a, b);
                    }
                }
            }
            Partition::OneWay(from, to) => self.cut_one_way(*from, *to),
        }
    }

    /// Decides the fate of a message from `from` to `to`: a request or a response, and one
    /// the network may deliver twice or not.
    pub fn route(
        &self,
        from: NodeId,
        to: NodeId,
        is_request: bool,
        may_duplicate: bool,
        rng: &mut ChaCha8Rng,
    ) -> Route {
        if !self.connected(from, to) {
            return Route::Lost("partition");
        }
        let options = &self.options;
        let loss = if is_request {
            options.request_loss
        } else {
            options.response_loss
        };
        if loss > 0.0 && rng.gen_bool(loss) {
            return Route::Lost("loss");
        }
        let copies = if may_duplicate
            && options.duplicate_probability > 0.0
            && rng.gen_bool(options.duplicate_probability)
        {
            2
        } else {
            1
        };
        let delays = (0..copies)
            .map(|_| {
                let long = !is_request
                    && options.long_delay_probability > 0.0
                    && rng.gen_bool(options.long_delay_probability);
                let (low, high) = if long {
                    options.long_delay_ms
                } else {
                    options.delay_ms
                };
                rng.gen_range(low..=high)
            })
            .collect();
        Route::Deliver(delays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64) -> Vec<NodeId> {
        (1..=n).map(NodeId).collect()
    }

    fn sees(net: &Network, ids: &[NodeId], node: NodeId) -> usize {
        ids.iter()
            .filter(|&&other| other == node || net.connected(node, other))
            .count()
    }

    #[test]
    fn majorities_ring_gives_each_node_a_different_majority() {
        for n in [5, 7] {
            let ids = ids(n);
            let mut net = Network::new(NetworkOptions::reliable());
            net.partition(&ids, &Partition::MajoritiesRing);
            for &node in &ids {
                assert!(
                    sees(&net, &ids, node) > ids.len() / 2,
                    "{node} sees a majority of {n}"
                );
                assert!(
                    sees(&net, &ids, node) < ids.len(),
                    "{node} does not see everyone of {n}"
                );
            }
        }
    }

    #[test]
    fn bridge_node_sees_both_halves_that_do_not_see_each_other() {
        let ids = ids(5);
        let mut net = Network::new(NetworkOptions::reliable());
        net.partition(&ids, &Partition::Bridge(NodeId(3)));
        assert_eq!(sees(&net, &ids, NodeId(3)), 5);
        assert!(!net.connected(NodeId(1), NodeId(4)));
        assert!(net.connected(NodeId(1), NodeId(2)));
    }

    #[test]
    fn one_way_cut_blocks_one_direction() {
        let mut net = Network::new(NetworkOptions::reliable());
        net.partition(&ids(3), &Partition::OneWay(NodeId(1), NodeId(2)));
        assert!(!net.connected(NodeId(1), NodeId(2)));
        assert!(net.connected(NodeId(2), NodeId(1)));
        net.heal();
        assert!(net.connected(NodeId(1), NodeId(2)));
    }
}
