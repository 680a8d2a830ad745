//! Benchmarks that are not the demo: table open time before and after maintenance.

use std::time::{Duration, Instant};

use anyhow::Result;
use clickstream::lake::{Lake, Table, commit_properties};
use clickstream::maintenance::maintain;
use deltalake::protocol::SaveMode;
use indicatif::ProgressBar;

/// Mean time to open `table` (load its log) over a few runs.
async fn open_time(lake: &Lake, table: Table) -> Result<Duration> {
    let runs = 5;
    let started = Instant::now();
    for _ in 0..runs {
        lake.table(table).await?;
    }
    Ok(started.elapsed() / runs)
}

/// Writes `commits` one-row commits to bronze without checkpoints (as a table looks when
/// nothing maintains it), then times opening it before and after [`maintain`].
pub async fn table_open(commits: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("clickstream-bench-open-{}", std::process::id()));
    let lake = Lake::open(dir.to_str().unwrap_or("clickstream-bench-open"))?;
    let bar = ProgressBar::new(commits as u64);
    let mut table = lake.table(Table::Bronze).await?;
    let started = Instant::now();
    for i in 0..commits {
        let msg = clickstream::trigger::KafkaMessage {
            partition: 0,
            offset: i as i64,
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            key: None,
            value: Some(format!("{{\"n\":{i}}}").into_bytes()),
            ..Default::default()
        };
        let batch = clickstream::bronze::raw_batch(&[msg], "bench")?;
        table = table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(
                commit_properties("bench", i as i64, serde_json::json!({}))
                    .with_create_checkpoint(false),
            )
            .await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let write_time = started.elapsed();
    let before = open_time(&lake, Table::Bronze).await?;
    let files_before = lake
        .table(Table::Bronze)
        .await?
        .snapshot()?
        .log_data()
        .num_files();
    let started = Instant::now();
    maintain(&lake, chrono::Duration::zero()).await?;
    let maintain_time = started.elapsed();
    let after = open_time(&lake, Table::Bronze).await?;
    let files_after = lake
        .table(Table::Bronze)
        .await?
        .snapshot()?
        .log_data()
        .num_files();
    println!(
        "bronze/events with {commits} commits (written in {:.1}s, no checkpoints):",
        write_time.as_secs_f64()
    );
    println!(
        "  open before maintenance: {:>8.1} ms  ({files_before} data files)",
        before.as_secs_f64() * 1e3
    );
    println!(
        "  maintenance:             {:>8.1} ms  (OPTIMIZE + checkpoint + VACUUM, all tables)",
        maintain_time.as_secs_f64() * 1e3
    );
    println!(
        "  open after maintenance:  {:>8.1} ms  ({files_after} data files)",
        after.as_secs_f64() * 1e3
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
