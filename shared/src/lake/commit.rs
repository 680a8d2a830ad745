//! Commits: `txn` versions (what a writer has already written), the commit properties every
//! writer uses, the files a commit added, and retrying commits that lost a race.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{Action, Transaction};

use crate::error::{Error, Result};

/// How often a stage tries a commit that keeps losing races with other writers.
pub const COMMIT_ATTEMPTS: u32 = 8;

/// The backoff between tries of a commit that lost a race: exponential from 50 ms up to 2 s, plus
/// a random jitter of up to as much again (seeded per process), so that writers that collided do
/// not collide again at once (AWS's "Exponential Backoff And Jitter").
fn lost_race_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(COMMIT_ATTEMPTS as usize - 1)
        .with_jitter()
}

/// Runs `attempt` until it does not lose a commit race ([`Error::is_lost_race`]): each try starts
/// from a fresh read of the tables, where it finds what the winner wrote, after a jittered backoff
/// ([`lost_race_backoff`]). Returns the result and the races lost on the way; after
/// [`COMMIT_ATTEMPTS`] lost races, [`Error::Contended`] on `writing` (a table or stage).
pub async fn retry_lost_races<T, F, Fut>(writing: &str, attempt: F) -> Result<(T, u32)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    use backon::Retryable;
    let retries = std::sync::atomic::AtomicU32::new(0);
    let result = attempt
        .retry(lost_race_backoff())
        .sleep(tokio::time::sleep)
        .when(Error::is_lost_race)
        .notify(|e, wait| {
            let retries = retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            tracing::info!(error = %e, retries, ?wait, "{writing} lost a commit race: re-checking");
        })
        .await;
    match result {
        Err(e) if e.is_lost_race() => Err(Error::Contended {
            table: writing.into(),
            attempts: COMMIT_ATTEMPTS,
        }),
        result => result.map(|value| (value, retries.into_inner())),
    }
}

/// The version recorded for `app_id` in the table's `txn` actions, if any.
pub async fn txn_version(table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
    let Ok(snapshot) = table.snapshot() else {
        return Ok(None);
    };
    snapshot
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(Error::delta(table.table_url().to_string()))
}

/// The commit properties of every delta-rs commit but maintenance's: no removal of expired log
/// files after a checkpoint (delta-rs's post-commit hook would otherwise delete them, which only
/// maintenance's role may do; maintenance removes them).
pub fn writer_commit() -> CommitProperties {
    CommitProperties::default().with_cleanup_expired_logs(Some(false))
}

/// Commit properties carrying a `txn` action and the stage's counts as commit metadata.
pub fn commit_properties(
    app_id: &str,
    version: i64,
    metadata: serde_json::Value,
) -> CommitProperties {
    let mut props = writer_commit().with_application_transaction(
        Transaction::new_with_last_update(app_id, version, Some(Utc::now().timestamp_millis())),
    );
    if let serde_json::Value::Object(map) = metadata {
        props = props.with_metadata(map);
    }
    props
}

/// A data file a commit added, as its `add` action names it.
#[derive(Debug, Clone, PartialEq)]
pub struct AddedFile {
    /// Path relative to the table root, percent-decoded (as delta-rs reads the `add` action).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Partition column -> value (None for null).
    pub partition_values: HashMap<String, Option<String>>,
    /// Rows it holds, from the `add` action's statistics (None without them).
    pub records: Option<u64>,
}

/// `numRecords` of an `add` action's statistics (a JSON object).
fn records_in_stats(stats: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Stats {
        #[serde(rename = "numRecords")]
        num_records: u64,
    }
    serde_json::from_str::<Stats>(stats)
        .ok()
        .map(|s| s.num_records)
}

/// The files a commit added as new data.
pub async fn added_files(table: &DeltaTable, version: i64) -> Result<Vec<AddedFile>> {
    let entry = table
        .log_store()
        .read_commit_entry(version as _)
        .await
        .map_err(Error::delta(table.table_url().to_string()))?
        .ok_or_else(|| Error::MissingCommit {
            table: table.table_url().to_string(),
            version,
        })?;
    let actions = deltalake::logstore::get_actions(version as _, &entry)
        .map_err(Error::delta(table.table_url().to_string()))?;
    // Compaction (OPTIMIZE) re-adds existing rows with dataChange = false: not new data.
    let adds = actions
        .into_iter()
        .filter_map(|action| match action {
            Action::Add(add) if add.data_change => Some(AddedFile {
                path: add.path,
                size: add.size.max(0) as u64,
                records: add.stats.as_deref().and_then(records_in_stats),
                partition_values: add.partition_values,
            }),
            _ => None,
        })
        .collect();
    Ok(adds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::DeltaTableError;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn lost_race() -> Error {
        Error::delta("bronze/events")(DeltaTableError::VersionAlreadyExists(1))
    }

    #[tokio::test]
    async fn lost_races_are_retried_after_a_backoff_until_one_commits() {
        let tries = AtomicU32::new(0);
        let started = std::time::Instant::now();
        let (value, retries) = retry_lost_races("bronze/events", || async {
            match tries.fetch_add(1, Ordering::Relaxed) {
                0..3 => Err(lost_race()),
                _ => Ok("committed"),
            }
        })
        .await
        .unwrap();
        assert_eq!((value, retries, tries.into_inner()), ("committed", 3, 4));
        // Three waits of 50, 100 and 200 ms, each with up to as much again in jitter.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_writer_that_keeps_losing_gives_up_as_contended() {
        let tries = AtomicU32::new(0);
        let result: Result<((), u32)> = retry_lost_races("silver/events", || async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err(lost_race())
        })
        .await;
        assert!(
            matches!(&result, Err(Error::Contended { table, attempts: COMMIT_ATTEMPTS }) if table == "silver/events"),
            "{result:?}"
        );
        assert_eq!(tries.into_inner(), COMMIT_ATTEMPTS);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let tries = AtomicU32::new(0);
        let result: Result<((), u32)> = retry_lost_races("gold", || async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err(Error::Column {
                column: "not a race".into(),
                reason: "a permanent error".into(),
            })
        })
        .await;
        assert!(matches!(result, Err(Error::Column { .. })), "{result:?}");
        assert_eq!(tries.into_inner(), 1);
    }

    #[test]
    fn the_backoff_grows_and_is_jittered() {
        let waits: Vec<Duration> = backon::BackoffBuilder::build(lost_race_backoff()).collect();
        assert_eq!(waits.len() as u32, COMMIT_ATTEMPTS - 1);
        assert!(
            waits.iter().all(|w| *w <= Duration::from_secs(4)),
            "{waits:?}"
        );
        let again: Vec<Duration> = backon::BackoffBuilder::build(lost_race_backoff()).collect();
        assert_ne!(waits, again, "no jitter");
    }
}
