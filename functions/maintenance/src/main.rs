//! maintenance: on schedule, OPTIMIZE + VACUUM + checkpoint of every lake table, and removal of
//! expired log files.

use clickstream::functions::{self, MaintenanceRun};
use clickstream::trigger::ScheduledRun;
use clickstream::{Lake, Result, settings};

async fn handler(
    lake: &Lake,
    retention: chrono::Duration,
    run: ScheduledRun,
) -> Result<MaintenanceRun> {
    run.check_target(env!("CARGO_PKG_NAME"))?;
    functions::maintenance(lake, retention, chrono::Utc::now()).await
}

#[global_allocator]
static ALLOCATOR: clickstream_lambda::Allocator = clickstream_lambda::Allocator;

#[tokio::main]
async fn main() -> Result<(), clickstream_lambda::RuntimeError> {
    clickstream_lambda::init();
    let settings = settings::MaintenanceSettings::from_env()?;
    let lake = settings.lake.open()?;
    clickstream_lambda::prepare_at_init(&lake, clickstream_lambda::nothing_to_prepare).await;
    clickstream_lambda::serve(|event| handler(&lake, settings.vacuum_retention, event)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream_testkit::samples::{self, Stage};

    #[tokio::test]
    async fn schedule_sample_maintains_every_table() {
        let (_dir, lake) = samples::fed_lake(Stage::Bronze).await;
        let out = handler(
            &lake,
            chrono::Duration::hours(168),
            samples::load("schedule-maintenance.json").unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(out.tables.len(), clickstream::lake::Table::ALL.len());
        assert_eq!(out.tables[0].table, "bronze/events");
        assert_eq!(out.tables[0].files_after, 1);
        // Bronze only: gold holds no event yet, and silver has every bronze commit to process.
        assert_eq!(out.freshness.seconds, None);
        assert!(out.freshness.silver_behind > 0, "{:?}", out.freshness);
    }
}
