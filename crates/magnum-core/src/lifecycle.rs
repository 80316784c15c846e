//! The state machine of clusters and nodegroups (spec §6): status values, the operations
//! that change them, and the tables saying which operation may start from which status and
//! how it ends.
//!
//! The API calls [`begin`] (clusters) and [`begin_nodegroup`] to refuse a request
//! synchronously (spec §11 decision 5) and to get the status to record; the conductor calls
//! [`finish`] and [`finish_nodegroup`] to get the status an operation ends in. Nothing else
//! decides transitions: `Cluster::begin`/`Cluster::finish` and `NodeGroup::begin`/
//! `NodeGroup::finish` are the only callers.
//!
//! ```text
//! clusters
//!   (none) ─create─▶ CREATE_IN_PROGRESS ─ok─▶ CREATE_COMPLETE
//!                                      └fail─▶ CREATE_FAILED
//!   *_COMPLETE ─update/resize/upgrade/rotate_ca─▶ UPDATE_IN_PROGRESS ─ok─▶ UPDATE_COMPLETE
//!   UPDATE_FAILED, UPDATE_IN_PROGRESS ─resize──▶                    └fail─▶ UPDATE_FAILED
//!   UPDATE_IN_PROGRESS (a failed upgrade) ─rollback─▶ ROLLBACK_IN_PROGRESS ─ok─▶ ROLLBACK_COMPLETE
//!                                                                       └fail─▶ ROLLBACK_FAILED
//!   any ─delete─▶ DELETE_IN_PROGRESS ─ok─▶ (rows removed)
//!                                   └fail─▶ DELETE_FAILED
//!
//! nodegroups other than the defaults
//!   (none) ─create─▶ CREATE_IN_PROGRESS ─ok─▶ CREATE_COMPLETE / └fail─▶ CREATE_FAILED
//!   any but DELETE_IN_PROGRESS ─update/resize─▶ UPDATE_IN_PROGRESS ─ok─▶ UPDATE_COMPLETE
//!                                                                 └fail─▶ UPDATE_FAILED
//!   any ─delete─▶ DELETE_IN_PROGRESS ─ok─▶ (row removed) / └fail─▶ DELETE_FAILED
//!   (a group's change ends when its cluster's operation ends, in the same write)
//! ```
//!
//! The default nodegroups (`default-master`, `default-worker`) have no operations of their
//! own: they always show their cluster's status.

use crate::DomainError;
use std::fmt;
use std::str::FromStr;

/// A cluster's (or nodegroup's) status, spelled as Magnum spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterStatus {
    CreateInProgress,
    CreateFailed,
    CreateComplete,
    UpdateInProgress,
    UpdateFailed,
    UpdateComplete,
    DeleteInProgress,
    DeleteFailed,
    DeleteComplete,
    ResumeComplete,
    ResumeFailed,
    RestoreComplete,
    RollbackInProgress,
    RollbackFailed,
    RollbackComplete,
    SnapshotComplete,
    CheckComplete,
    AdoptComplete,
}

use ClusterStatus::*;

impl ClusterStatus {
    pub const ALL: [ClusterStatus; 18] = [
        CreateInProgress,
        CreateFailed,
        CreateComplete,
        UpdateInProgress,
        UpdateFailed,
        UpdateComplete,
        DeleteInProgress,
        DeleteFailed,
        DeleteComplete,
        ResumeComplete,
        ResumeFailed,
        RestoreComplete,
        RollbackInProgress,
        RollbackFailed,
        RollbackComplete,
        SnapshotComplete,
        CheckComplete,
        AdoptComplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CreateInProgress => "CREATE_IN_PROGRESS",
            CreateFailed => "CREATE_FAILED",
            CreateComplete => "CREATE_COMPLETE",
            UpdateInProgress => "UPDATE_IN_PROGRESS",
            UpdateFailed => "UPDATE_FAILED",
            UpdateComplete => "UPDATE_COMPLETE",
            DeleteInProgress => "DELETE_IN_PROGRESS",
            DeleteFailed => "DELETE_FAILED",
            DeleteComplete => "DELETE_COMPLETE",
            ResumeComplete => "RESUME_COMPLETE",
            ResumeFailed => "RESUME_FAILED",
            RestoreComplete => "RESTORE_COMPLETE",
            RollbackInProgress => "ROLLBACK_IN_PROGRESS",
            RollbackFailed => "ROLLBACK_FAILED",
            RollbackComplete => "ROLLBACK_COMPLETE",
            SnapshotComplete => "SNAPSHOT_COMPLETE",
            CheckComplete => "CHECK_COMPLETE",
            AdoptComplete => "ADOPT_COMPLETE",
        }
    }

    /// The statuses after which a cluster is usable and may be changed (spec §6.3).
    pub fn is_complete(self) -> bool {
        matches!(
            self,
            CreateComplete
                | UpdateComplete
                | ResumeComplete
                | RestoreComplete
                | RollbackComplete
                | SnapshotComplete
                | CheckComplete
                | AdoptComplete
        )
    }

    /// The statuses that make `GET` show `faults`.
    pub fn is_failed(self) -> bool {
        matches!(
            self,
            CreateFailed | UpdateFailed | DeleteFailed | RollbackFailed | ResumeFailed
        )
    }

    /// An operation is under way.
    pub fn is_in_progress(self) -> bool {
        matches!(
            self,
            CreateInProgress | UpdateInProgress | DeleteInProgress | RollbackInProgress
        )
    }
}

impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClusterStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ClusterStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| format!("unknown cluster status {text}"))
    }
}

/// Something a user asks of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    /// `PATCH /v1/clusters/{id}` (node count or health).
    Update,
    Resize,
    Upgrade,
    RotateCa,
    Delete,
    /// Returning to the template an upgrade came from, after the upgrade failed. Only the
    /// conductor starts it, from the failing upgrade.
    Rollback,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::Create,
        Operation::Update,
        Operation::Resize,
        Operation::Upgrade,
        Operation::RotateCa,
        Operation::Delete,
        Operation::Rollback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Resize => "resize",
            Operation::Upgrade => "upgrade",
            Operation::RotateCa => "rotate_ca",
            Operation::Delete => "delete",
            Operation::Rollback => "rollback",
        }
    }

    /// The verb of refusal messages ("Updating a cluster when status is …").
    fn gerund(self) -> &'static str {
        match self {
            Operation::Create => "Creating",
            Operation::Update => "Updating",
            Operation::Resize => "Resizing",
            Operation::Upgrade => "Upgrading",
            Operation::RotateCa => "Rotating the CA certificate of",
            Operation::Delete => "Deleting",
            Operation::Rollback => "Rolling back",
        }
    }
}

impl FromStr for Operation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|operation| operation.as_str() == text)
            .ok_or_else(|| format!("unknown cluster operation {text}"))
    }
}

/// Whether `operation` may start while the cluster is `status` (the table of spec §6.3).
pub fn is_allowed(status: Option<ClusterStatus>, operation: Operation) -> bool {
    match (operation, status) {
        // A create starts from nothing.
        (Operation::Create, None) => true,
        (Operation::Create, Some(_)) => false,
        (_, None) => false,
        // Deleting is always possible; it supersedes whatever is under way.
        (Operation::Delete, Some(_)) => true,
        (Operation::Update | Operation::Upgrade | Operation::RotateCa, Some(status)) => {
            status.is_complete()
        }
        (Operation::Resize, Some(status)) => {
            status.is_complete() || matches!(status, UpdateFailed | UpdateInProgress)
        }
        (Operation::Rollback, Some(status)) => status == UpdateInProgress,
    }
}

/// Starts `operation` on a cluster in `status`: the status to record now, or the refusal
/// the API returns (400, as seed clients saw it).
pub fn begin(
    status: Option<ClusterStatus>,
    operation: Operation,
) -> Result<ClusterStatus, DomainError> {
    if !is_allowed(status, operation) {
        let shown = status.map(ClusterStatus::as_str).unwrap_or("None");
        return Err(DomainError::invalid(format!(
            "{} a cluster when status is \"{shown}\" is not supported.",
            operation.gerund()
        )));
    }
    Ok(match operation {
        Operation::Create => CreateInProgress,
        Operation::Delete => DeleteInProgress,
        Operation::Rollback => RollbackInProgress,
        Operation::Update | Operation::Resize | Operation::Upgrade | Operation::RotateCa => {
            UpdateInProgress
        }
    })
}

/// The status an operation ends in.
pub fn finish(operation: Operation, succeeded: bool) -> ClusterStatus {
    match (operation, succeeded) {
        (Operation::Create, true) => CreateComplete,
        (Operation::Create, false) => CreateFailed,
        (Operation::Delete, true) => DeleteComplete,
        (Operation::Delete, false) => DeleteFailed,
        (Operation::Rollback, true) => RollbackComplete,
        (Operation::Rollback, false) => RollbackFailed,
        (_, true) => UpdateComplete,
        (_, false) => UpdateFailed,
    }
}

/// Something a user asks of one (non-default) nodegroup; each also starts an operation of
/// its cluster, which carries it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeGroupOperation {
    Create,
    /// New limits, node labels or taints.
    Update,
    /// A new node count.
    Resize,
    Delete,
}

impl NodeGroupOperation {
    pub const ALL: [NodeGroupOperation; 4] = [
        NodeGroupOperation::Create,
        NodeGroupOperation::Update,
        NodeGroupOperation::Resize,
        NodeGroupOperation::Delete,
    ];
}

/// Whether `operation` may start on a nodegroup in `status` (None: no such group yet).
pub fn is_allowed_on_nodegroup(
    status: Option<ClusterStatus>,
    operation: NodeGroupOperation,
) -> bool {
    match (operation, status) {
        (NodeGroupOperation::Create, status) => status.is_none(),
        (_, None) => false,
        // A group whose nodes are going cannot change any more; deleting again is allowed
        // (and changes nothing).
        (NodeGroupOperation::Update | NodeGroupOperation::Resize, Some(status)) => {
            status != DeleteInProgress
        }
        (NodeGroupOperation::Delete, Some(_)) => true,
    }
}

/// Starts `operation` on a nodegroup in `status`: the status to record, or the refusal.
pub fn begin_nodegroup(
    status: Option<ClusterStatus>,
    operation: NodeGroupOperation,
) -> Result<ClusterStatus, DomainError> {
    if !is_allowed_on_nodegroup(status, operation) {
        return Err(DomainError::invalid(match (operation, status) {
            (NodeGroupOperation::Create, _) => "exists already.".to_string(),
            (_, Some(DeleteInProgress)) => "is being deleted and cannot be changed.".to_string(),
            (_, status) => format!(
                "cannot change when status is \"{}\".",
                status.map(ClusterStatus::as_str).unwrap_or("None")
            ),
        }));
    }
    Ok(match operation {
        NodeGroupOperation::Create => CreateInProgress,
        NodeGroupOperation::Update | NodeGroupOperation::Resize => UpdateInProgress,
        NodeGroupOperation::Delete => DeleteInProgress,
    })
}

/// How a nodegroup's pending change ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeGroupEnd {
    /// The group keeps this status.
    Status(ClusterStatus),
    /// The group was deleted: its row goes.
    Removed,
}

/// The end of a nodegroup's pending change when its cluster's operation ended; a group with
/// no change pending keeps its status.
pub fn finish_nodegroup(status: ClusterStatus, succeeded: bool) -> NodeGroupEnd {
    NodeGroupEnd::Status(match (status, succeeded) {
        (CreateInProgress, true) => CreateComplete,
        (CreateInProgress, false) => CreateFailed,
        (UpdateInProgress, true) => UpdateComplete,
        (UpdateInProgress, false) => UpdateFailed,
        (DeleteInProgress, true) => return NodeGroupEnd::Removed,
        (DeleteInProgress, false) => DeleteFailed,
        (unchanged, _) => unchanged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodegroup_operations_follow_their_table() {
        for status in ClusterStatus::ALL {
            for operation in NodeGroupOperation::ALL {
                let expected = match operation {
                    NodeGroupOperation::Create => false,
                    NodeGroupOperation::Delete => true,
                    _ => status != DeleteInProgress,
                };
                assert_eq!(
                    begin_nodegroup(Some(status), operation).is_ok(),
                    expected,
                    "{status} {operation:?}"
                );
            }
        }
        assert_eq!(
            begin_nodegroup(None, NodeGroupOperation::Create),
            Ok(CreateInProgress)
        );
        assert!(begin_nodegroup(None, NodeGroupOperation::Resize).is_err());
        assert_eq!(
            begin_nodegroup(Some(CreateComplete), NodeGroupOperation::Resize),
            Ok(UpdateInProgress)
        );
        assert_eq!(
            finish_nodegroup(CreateInProgress, true),
            NodeGroupEnd::Status(CreateComplete)
        );
        assert_eq!(
            finish_nodegroup(UpdateInProgress, false),
            NodeGroupEnd::Status(UpdateFailed)
        );
        assert_eq!(
            finish_nodegroup(DeleteInProgress, true),
            NodeGroupEnd::Removed
        );
        assert_eq!(
            finish_nodegroup(DeleteInProgress, false),
            NodeGroupEnd::Status(DeleteFailed)
        );
        // A group with nothing pending keeps its status.
        assert_eq!(
            finish_nodegroup(CreateComplete, false),
            NodeGroupEnd::Status(CreateComplete)
        );
    }

    /// Every (status, operation) pair against the table of spec §6.3.
    #[test]
    fn every_status_and_operation_pair_follows_the_table() {
        let update_set = [
            CreateComplete,
            UpdateComplete,
            ResumeComplete,
            RestoreComplete,
            RollbackComplete,
            SnapshotComplete,
            CheckComplete,
            AdoptComplete,
        ];
        for status in ClusterStatus::ALL {
            for operation in Operation::ALL {
                let expected = match operation {
                    Operation::Create => false,
                    Operation::Delete => true,
                    Operation::Update | Operation::Upgrade | Operation::RotateCa => {
                        update_set.contains(&status)
                    }
                    Operation::Resize => {
                        update_set.contains(&status)
                            || status == UpdateFailed
                            || status == UpdateInProgress
                    }
                    Operation::Rollback => status == UpdateInProgress,
                };
                assert_eq!(
                    is_allowed(Some(status), operation),
                    expected,
                    "{status} {operation:?}"
                );
                assert_eq!(
                    begin(Some(status), operation).is_ok(),
                    expected,
                    "{status} {operation:?}"
                );
            }
        }
        assert_eq!(begin(None, Operation::Create), Ok(CreateInProgress));
        assert!(begin(None, Operation::Delete).is_err());
    }

    #[test]
    fn operations_start_and_end_in_the_right_statuses() {
        assert_eq!(
            begin(Some(CreateComplete), Operation::Resize),
            Ok(UpdateInProgress)
        );
        assert_eq!(
            begin(Some(CreateInProgress), Operation::Delete),
            Ok(DeleteInProgress)
        );
        assert_eq!(finish(Operation::Create, true), CreateComplete);
        assert_eq!(finish(Operation::Create, false), CreateFailed);
        assert_eq!(finish(Operation::Resize, true), UpdateComplete);
        assert_eq!(finish(Operation::RotateCa, false), UpdateFailed);
        assert_eq!(finish(Operation::Delete, true), DeleteComplete);
        assert_eq!(
            begin(Some(UpdateInProgress), Operation::Rollback),
            Ok(RollbackInProgress)
        );
        assert_eq!(finish(Operation::Rollback, true), RollbackComplete);
        assert_eq!(finish(Operation::Rollback, false), RollbackFailed);
    }

    #[test]
    fn refusals_name_the_status() {
        assert_eq!(
            begin(Some(CreateInProgress), Operation::Update)
                .unwrap_err()
                .message,
            "Updating a cluster when status is \"CREATE_IN_PROGRESS\" is not supported."
        );
        assert_eq!(
            begin(Some(CreateInProgress), Operation::Resize)
                .unwrap_err()
                .message,
            "Resizing a cluster when status is \"CREATE_IN_PROGRESS\" is not supported."
        );
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in ClusterStatus::ALL {
            assert_eq!(status.as_str().parse::<ClusterStatus>(), Ok(status));
        }
        assert!("BROKEN".parse::<ClusterStatus>().is_err());
        assert!(CreateFailed.is_failed() && !CreateComplete.is_failed());
        assert!(DeleteInProgress.is_in_progress());
    }
}
