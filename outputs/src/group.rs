//! Noise control for one output: at most one message per rule and cluster per window. Alerts
//! inside the window are not sent on their own; the next message of that rule and cluster says
//! how many were grouped into it (`"grouped": N` in its row).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::outbox::Queued;

/// Per rule and cluster: when a message last went out, and how many alerts were held back since.
#[derive(Default)]
pub struct Grouping {
    window: Option<Duration>,
    last: HashMap<(String, String), (Option<Instant>, u64)>,
}

/// What to send of a batch of queued alerts.
pub struct Plan {
    /// The alerts to send, with `grouped` set where others were held back, and each one's index
    /// in the batch.
    pub send: Vec<(usize, Queued)>,
    /// The state to keep once the output took the plan's alerts.
    next: HashMap<(String, String), (Option<Instant>, u64)>,
}

fn key(q: &Queued) -> (String, String) {
    (q.rule_id.clone(), q.cluster.clone())
}

impl Grouping {
    /// Grouping with `window` (none: every alert is sent).
    pub fn new(window: Option<Duration>) -> Self {
        Self {
            window,
            last: HashMap::new(),
        }
    }

    /// Which of `batch` to send at `now`.
    pub fn plan(&self, batch: &[Queued], now: Instant) -> Plan {
        let Some(window) = self.window else {
            return Plan {
                send: batch.iter().cloned().enumerate().collect(),
                next: HashMap::new(),
            };
        };
        let mut next = self.last.clone();
        let mut send = Vec::new();
        for (i, q) in batch.iter().enumerate() {
            // A key never sent has no time (`now - 2 * window` could be before the clock's
            // start on a machine that booted less than that ago).
            let entry = next.entry(key(q)).or_insert((None, 0));
            if entry
                .0
                .is_some_and(|last| now.duration_since(last) < window)
            {
                entry.1 += 1;
                continue;
            }
            let mut q = q.clone();
            if entry.1 > 0 {
                let mut row = q.row();
                row["grouped"] = entry.1.into();
                q.json = row.to_string().into();
            }
            *entry = (Some(now), 0);
            send.push((i, q));
        }
        Plan { send, next }
    }

    /// The output took every alert of the plan: keep what it decided.
    pub fn commit(&mut self, plan: Plan) {
        if self.window.is_some() {
            self.last = plan.next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, rule: &str) -> Queued {
        Queued::for_test(
            id,
            serde_json::json!({"alert_id": id, "rule_id": rule, "cluster": "prod"}),
        )
    }

    #[test]
    fn one_message_per_rule_and_cluster_per_window_with_a_count() {
        let start = Instant::now();
        let mut g = Grouping::new(Some(Duration::from_secs(600)));
        let batch = [
            alert("a", "exec"),
            alert("b", "exec"),
            alert("c", "rbac"),
            alert("d", "exec"),
        ];
        let plan = g.plan(&batch, start);
        let sent: Vec<usize> = plan.send.iter().map(|(i, _)| *i).collect();
        assert_eq!(sent, [0, 2]);
        g.commit(plan);
        // Still inside the window: held back and counted.
        let plan = g.plan(&[alert("e", "exec")], start + Duration::from_secs(60));
        assert!(plan.send.is_empty());
        g.commit(plan);
        // After it: sent, saying how many were grouped (b, d, e).
        let plan = g.plan(&[alert("f", "exec")], start + Duration::from_secs(601));
        assert_eq!(plan.send.len(), 1);
        assert_eq!(plan.send[0].1.row()["grouped"], 3);
        // Without a window, everything goes.
        let plain = Grouping::new(None).plan(&batch, start);
        assert_eq!(plain.send.len(), 4);
    }

    #[test]
    fn a_window_longer_than_the_uptime_sends_the_first_alert() {
        // Longer than this machine has been up: the first alert of a key still goes.
        let g = Grouping::new(Some(Duration::from_secs(100 * 365 * 24 * 3600)));
        let plan = g.plan(&[alert("a", "exec")], Instant::now());
        assert_eq!(plan.send.len(), 1);
    }
}
