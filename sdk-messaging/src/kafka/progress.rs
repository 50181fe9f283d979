//! Which offsets of a partition may be committed: only up to the oldest message still
//! being handled, so that a consumer that dies leaves nothing handled-but-uncommitted
//! behind it (at least once), even with several messages in flight at a time.

use std::collections::{BTreeSet, HashMap};

/// In-flight and settled offsets per topic and partition.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    partitions: HashMap<(String, i32), Partition>,
}

#[derive(Debug, Default)]
struct Partition {
    in_flight: BTreeSet<i64>,
    /// The highest offset settled so far.
    settled: Option<i64>,
    /// The offset last stored for commit.
    stored: Option<i64>,
}

impl Progress {
    /// A message at `offset` was delivered and is being handled.
    pub(crate) fn started(&mut self, topic: &str, partition: i32, offset: i64) {
        self.partitions
            .entry((topic.to_owned(), partition))
            .or_default()
            .in_flight
            .insert(offset);
    }

    /// The message at `offset` is settled; returns the offset to store for commit (the
    /// last of an unbroken run of settled ones) when it moved.
    pub(crate) fn settled(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&(topic.to_owned(), partition))?;
        p.in_flight.remove(&offset);
        p.settled = Some(p.settled.map_or(offset, |s| s.max(offset)));
        let upto = match p.in_flight.first() {
            Some(&oldest) => oldest - 1,
            None => p.settled?,
        };
        if p.stored.is_some_and(|s| s >= upto) || upto < 0 {
            return None;
        }
        p.stored = Some(upto);
        Some(upto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_stop_at_the_oldest_message_in_flight() {
        let mut p = Progress::default();
        for offset in 0..4 {
            p.started("t", 0, offset);
        }
        assert_eq!(p.settled("t", 0, 2), None, "0 and 1 are still in flight");
        assert_eq!(p.settled("t", 0, 0), Some(0));
        assert_eq!(p.settled("t", 0, 3), None);
        assert_eq!(p.settled("t", 0, 1), Some(3), "0 to 3 all settled");
        p.started("t", 1, 7);
        assert_eq!(p.settled("t", 1, 7), Some(7), "partitions are apart");
    }
}
