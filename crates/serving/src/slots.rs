//! Caps on calls that stay open for as long as the client likes — ledgerd's `ReadAll` with
//! `follow` — per holder (who is calling) and in total. Each such call holds a reader task and
//! its buffered events however slowly its client reads, and the per-connection caps do not
//! bound them: a client may open many connections, or many clients one principal's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tonic::Status;

/// A cap and the configuration key that sets it.
#[derive(Clone, Copy, Debug)]
pub struct Cap {
    pub max: usize,
    pub key: &'static str,
}

/// Slots for one kind of call (`what`, as refusals name it).
#[derive(Clone)]
pub struct Slots {
    what: &'static str,
    total: Cap,
    per_holder: Cap,
    held: Arc<Mutex<Held>>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_holder: HashMap<String, usize>,
}

impl Slots {
    pub fn new(what: &'static str, total: Cap, per_holder: Cap) -> Self {
        Slots {
            what,
            total,
            per_holder,
            held: Arc::default(),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for `holder`, or `RESOURCE_EXHAUSTED` naming the cap it is over and its key.
    #[allow(clippy::result_large_err)] // a refusal is what a handler returns
    pub fn take(&self, holder: &str) -> Result<Slot, Status> {
        let mut held = self.held();
        let of_holder = held.by_holder.get(holder).copied().unwrap_or(0);
        if of_holder >= self.per_holder.max {
            return Err(Status::resource_exhausted(format!(
                "too many {} open for {holder}: the limit is {} ({}); close one first",
                self.what, self.per_holder.max, self.per_holder.key
            )));
        }
        if held.total >= self.total.max {
            return Err(Status::resource_exhausted(format!(
                "too many {} open on this server: the limit is {} ({}); retry later",
                self.what, self.total.max, self.total.key
            )));
        }
        held.total += 1;
        *held.by_holder.entry(holder.to_string()).or_insert(0) += 1;
        Ok(Slot {
            slots: self.clone(),
            holder: holder.to_string(),
        })
    }
}

/// A slot held; given back when dropped.
pub struct Slot {
    slots: Slots,
    holder: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held();
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_holder.get_mut(&self.holder) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.by_holder.remove(&self.holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_holder_then_total_and_given_back_on_drop() {
        let slots = Slots::new(
            "follow streams",
            Cap {
                max: 3,
                key: "follow_streams_max",
            },
            Cap {
                max: 2,
                key: "follow_streams_per_principal_max",
            },
        );
        let a1 = slots.take("alice").expect("a1");
        let a2 = slots.take("alice").expect("a2");
        let refused = slots.take("alice").err().expect("alice's third");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused
                .message()
                .contains("the limit is 2 (follow_streams_per_principal_max)"),
            "{}",
            refused.message()
        );
        let b1 = slots.take("bob").expect("b1");
        let refused = slots.take("bob").err().expect("the fourth in total");
        assert!(
            refused
                .message()
                .contains("the limit is 3 (follow_streams_max)"),
            "{}",
            refused.message()
        );
        drop(a1);
        let b2 = slots.take("bob").expect("room again");
        drop((a2, b1, b2));
        assert_eq!(slots.held().total, 0);
        assert!(slots.held().by_holder.is_empty());
    }
}
