//! Upper bounds on every number a request may carry.
//!
//! Upstream Magnum declares most counts as unbounded integers; a service that plans nodes,
//! sleeps for timeouts and adds counts together cannot. Every numeric request field is
//! checked against these bounds when it is decoded, so later arithmetic (sums over
//! nodegroups, deadlines from timeouts) stays far from overflow. The bounds are generous:
//! each is above what any driver can build, so a driver's own shape check (with its clearer
//! reason) still decides what a cluster may look like.

/// Workers (or nodes) one count field may ask for: `node_count`, `min_node_count`,
/// `max_node_count` of clusters, nodegroups and resizes.
pub const MAX_NODE_COUNT: i64 = 5000;

/// Masters one cluster may ask for.
pub const MAX_MASTER_COUNT: i64 = 99;

/// Nodegroups one cluster may have (the two default ones included).
pub const MAX_NODEGROUPS_PER_CLUSTER: i64 = 100;

/// `create_timeout` (minutes): one week.
pub const MAX_CREATE_TIMEOUT_MINUTES: i64 = 7 * 24 * 60;

/// `docker_volume_size` (GB): 64 TiB, above any single block volume clouds offer.
pub const MAX_DOCKER_VOLUME_SIZE_GB: i64 = 65_536;

/// A quota's `hard_limit`.
pub const MAX_QUOTA_HARD_LIMIT: i64 = 1_000_000;

/// The upgrade action's `max_batch_size`.
pub const MAX_BATCH_SIZE: i64 = MAX_NODE_COUNT;

/// Sums node counts without overflow: `None` when the sum leaves `i64` (which the bounds
/// above make impossible for stored values, but request arithmetic must not assume).
pub fn checked_sum(counts: impl IntoIterator<Item = i64>) -> Option<i64> {
    counts
        .into_iter()
        .try_fold(0_i64, |total, count| total.checked_add(count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_refuse_to_overflow() {
        assert_eq!(checked_sum([1, 2, 3]), Some(6));
        assert_eq!(checked_sum([i64::MAX, 1]), None);
        assert_eq!(checked_sum([]), Some(0));
    }

    #[test]
    fn bounds_leave_room_for_arithmetic() {
        // Every nodegroup at its largest, summed, is still tiny next to i64::MAX.
        let largest = checked_sum(std::iter::repeat_n(
            MAX_NODE_COUNT,
            usize::try_from(MAX_NODEGROUPS_PER_CLUSTER).unwrap_or_default(),
        ));
        assert!(largest.is_some_and(|total| total < i64::from(i32::MAX)));
        // A week of minutes fits a chrono Duration comfortably.
        assert!(chrono::Duration::try_minutes(MAX_CREATE_TIMEOUT_MINUTES).is_some());
    }
}
