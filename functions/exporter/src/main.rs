//! exporter: on schedule, gold -> `exports/` (DuckDB file, CSV, Parquet).

use clickstream::export::ExportOutcome;
use clickstream::trigger::ScheduledRun;
use clickstream::{Lake, Result};

async fn handler(lake: &Lake, run: ScheduledRun) -> Result<ExportOutcome> {
    run.check_target(env!("CARGO_PKG_NAME"))?;
    clickstream_report::exporter(lake).await
}

clickstream_lambda::lake_function!(handler);

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream_testkit::samples::{self, Stage};

    #[tokio::test]
    async fn schedule_sample_exports_every_gold_table() {
        let (dir, lake) = samples::fed_lake(Stage::Gold).await;

        let out = handler(&lake, samples::load("schedule-exporter.json").unwrap())
            .await
            .unwrap();
        assert_eq!(out.rows["sessions"], 2);
        let db = duckdb::Connection::open(dir.path().join("exports/clickstream.duckdb")).unwrap();
        let sessions: i64 = db
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sessions, 2);
        for table in ["sessions", "daily_metrics", "funnel_daily", "page_daily"] {
            assert!(dir.path().join(format!("exports/{table}.csv")).exists());
            assert!(dir.path().join(format!("exports/{table}.parquet")).exists());
        }
    }

    #[tokio::test]
    async fn a_schedule_for_another_function_is_refused() {
        let (_dir, lake) = samples::fed_lake(Stage::Gold).await;
        let err = handler(&lake, ScheduledRun::for_function("maintenance"))
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        assert!(err.to_string().contains("maintenance"), "{err}");
    }

    /// A failed export removes its scratch directory (a warm container's /tmp would fill up).
    #[tokio::test]
    async fn a_failed_export_leaves_no_scratch_directory() {
        let (dir, lake) = samples::fed_lake(Stage::Gold).await;
        let temp = tempfile::tempdir().unwrap();
        clickstream::export::export_via(&lake, temp.path())
            .await
            .unwrap();
        assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0);
        // exports/ is a file: writing under it fails halfway through the export.
        std::fs::remove_dir_all(dir.path().join("exports")).unwrap();
        std::fs::write(dir.path().join("exports"), b"in the way").unwrap();
        let failed = clickstream::export::export_via(&lake, temp.path()).await;
        assert!(failed.is_err());
        let left: Vec<_> = std::fs::read_dir(temp.path()).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
