//! The result line of one run, in the format `bench/core.sh` reads.
//!
//! Plain: `skiff clients=64 ops=20032 elapsed_s=0.041200 ops_per_s=486213 p50_us=120.3 p99_us=250.1`.
//! JSON (`--json`): one object per line with the same fields,
//! `{"impl":"skiff","clients":64,"ops":20032,"elapsed_s":0.041200,"ops_per_s":486213,"p50_us":120.3,"p99_us":250.1}`.
//! The openraft peer under `bench/peers/openraft-bench` prints the same two formats.

use std::time::Duration;

/// One run's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultLine {
    /// Which implementation ran: `skiff` or `openraft`.
    pub implementation: &'static str,
    /// Closed-loop clients.
    pub clients: usize,
    /// Writes completed.
    pub ops: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// Median write latency in microseconds.
    pub p50_us: f64,
    /// 99th-percentile write latency in microseconds.
    pub p99_us: f64,
}

impl ResultLine {
    /// Writes per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// The plain one-line form.
    pub fn plain(&self) -> String {
        format!(
            "{} clients={} ops={} elapsed_s={:.6} ops_per_s={:.0} p50_us={:.1} p99_us={:.1}",
            self.implementation,
            self.clients,
            self.ops,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.p50_us,
            self.p99_us
        )
    }

    /// The JSON form: one object on one line.
    pub fn json(&self) -> String {
        format!(
            "{{\"impl\":\"{}\",\"clients\":{},\"ops\":{},\"elapsed_s\":{:.6},\"ops_per_s\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
            self.implementation,
            self.clients,
            self.ops,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.p50_us,
            self.p99_us
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_carry_the_same_fields() {
        let line = ResultLine {
            implementation: "skiff",
            clients: 64,
            ops: 1000,
            elapsed: Duration::from_millis(500),
            p50_us: 12.34,
            p99_us: 56.78,
        };
        assert_eq!(
            line.plain(),
            "skiff clients=64 ops=1000 elapsed_s=0.500000 ops_per_s=2000 p50_us=12.3 p99_us=56.8"
        );
        assert_eq!(
            line.json(),
            "{\"impl\":\"skiff\",\"clients\":64,\"ops\":1000,\"elapsed_s\":0.500000,\"ops_per_s\":2000,\"p50_us\":12.3,\"p99_us\":56.8}"
        );
    }
}
