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
        "  maintenance:             {:>8.1} ms  (OPTIMIZE + VACUUM + checkpoint, all tables)",
        maintain_time.as_secs_f64() * 1e3
    );
    println!(
        "  open after maintenance:  {:>8.1} ms  ({files_after} data files)",
        after.as_secs_f64() * 1e3
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// The field the freshness benchmark adds to each event: when it was produced (ms since epoch).
/// Unknown fields are kept in silver's `extra` column, where the benchmark reads it back.
const SENT_FIELD: &str = "bench_sent_ms";

/// Settings of the freshness benchmark.
pub struct FreshnessConfig {
    pub brokers: String,
    pub topic: String,
    pub rate: f64,
    pub duration: Duration,
    /// How long to wait, after producing stops, for the last events to reach gold.
    pub drain: Duration,
    /// The events' date, in days before today (1: yesterday).
    pub days_ago: i64,
}

/// `events` generated events of the day `days_ago` days before today (no duplicates, invalid or
/// late ones), each stamped with when it is produced ([`SENT_FIELD`]).
fn stamped_events(events: usize, days_ago: i64) -> impl Iterator<Item = Vec<u8>> {
    let mut generator = clickstream_generator::GeneratorConfig::new(events);
    generator.seed = chrono::Utc::now().timestamp() as u64;
    generator.start = chrono::Utc::now().date_naive() - chrono::Duration::days(days_ago);
    generator.days = 1;
    (
        generator.duplicate_rate,
        generator.invalid_rate,
        generator.late_rate,
    ) = (0.0, 0.0, 0.0);
    clickstream_generator::Generator::new(generator).map(|line| {
        let mut event: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&line).expect("generated events are JSON objects");
        let sent = chrono::Utc::now().timestamp_millis();
        event.insert(SENT_FIELD.into(), sent.into());
        serde_json::to_vec(&event).expect("JSON")
    })
}

/// When the events silver added in `versions` were produced ([`SENT_FIELD`], ms since epoch).
async fn sent_times(lake: &Lake, versions: std::ops::RangeInclusive<i64>) -> Result<Vec<i64>> {
    use clickstream::lake::read_added_rows;
    let silver = lake.table(Table::Silver).await?;
    let mut sent_ms = Vec::new();
    for v in versions {
        for batch in read_added_rows(&silver, v, &["extra"]).await? {
            let extras =
                clickstream::lake::typed_column::<arrow::array::StringArray>(&batch, "extra")?;
            sent_ms.extend(extras.iter().flatten().filter_map(|extra| {
                serde_json::from_str::<serde_json::Value>(extra)
                    .ok()
                    .and_then(|e| e[SENT_FIELD].as_i64())
            }));
        }
    }
    Ok(sent_ms)
}

/// The `p` quantile (0 to 1) of `sorted` by the nearest-rank method; none when it is empty.
pub(crate) fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    sorted
        .get(((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1))
        .copied()
}

/// What was produced, how much reached gold, and the latency percentiles (`latencies_ms` sorted).
fn print_latencies(
    produced: &crate::kafka::Produced,
    latencies_ms: &[i64],
    events: usize,
    drain: Duration,
) {
    let pct = |p: f64| nearest_rank(latencies_ms, p).map_or(f64::NAN, |ms| ms as f64 / 1e3);
    println!(
        "  produced     {} acknowledged in {:.1}s ({:.0} events/s)",
        produced.acknowledged,
        produced.elapsed.as_secs_f64(),
        produced.acknowledged as f64 / produced.elapsed.as_secs_f64()
    );
    println!(
        "  in gold      {} of {events} within {:.0}s after producing stopped",
        latencies_ms.len(),
        drain.as_secs_f64()
    );
    println!(
        "  latency      produce -> visible in gold: p50 {:.1}s  p95 {:.1}s  max {:.1}s",
        pct(0.50),
        pct(0.95),
        pct(1.0)
    );
}

/// Produces to a running local stack at a fixed rate and measures, per event, the time from
/// produce to visible in gold (gold computed over a silver version that holds it).
pub async fn freshness(lake: &Lake, config: FreshnessConfig) -> Result<()> {
    let (produced, latencies_ms) = through_gold(lake, &config).await?;
    let events = (config.rate * config.duration.as_secs_f64()).round() as usize;
    print_latencies(&produced, &latencies_ms, events, config.drain);
    if latencies_ms.len() < events {
        anyhow::bail!(
            "{} events did not reach gold: the stack did not keep up at {} events/s",
            events - latencies_ms.len(),
            config.rate
        );
    }
    Ok(())
}

/// Produces `config.rate` events/s for `config.duration` to a running local stack, and waits
/// until every one is visible in gold or `config.drain` has passed since producing stopped: what
/// was produced, and each event's produce-to-gold latency in ms, sorted.
pub async fn through_gold(
    lake: &Lake,
    config: &FreshnessConfig,
) -> Result<(crate::kafka::Produced, Vec<i64>)> {
    use clickstream::gold::processed_silver_version;

    let events = (config.rate * config.duration.as_secs_f64()).round() as usize;
    let stamped = crate::kafka::paced(stamped_events(events, config.days_ago), config.rate);
    let mut seen = processed_silver_version(lake).await?.unwrap_or(-1);
    println!(
        "freshness: {events} events at {} events/s to {} ({}), lake {}",
        config.rate,
        config.topic,
        config.brokers,
        lake.root()
    );
    let bar = ProgressBar::new(events as u64);
    let (brokers, topic) = (config.brokers.clone(), config.topic.clone());
    let mut producer = tokio::spawn({
        let bar = bar.clone();
        let never = std::sync::atomic::AtomicBool::new(false);
        async move { crate::kafka::produce(&brokers, &topic, stamped, &never, &bar).await }
    });

    let mut latencies_ms: Vec<i64> = Vec::with_capacity(events);
    let mut produce_stopped: Option<Instant> = None;
    let mut produced = None;
    loop {
        if producer.is_finished() && produced.is_none() {
            produced = Some((&mut producer).await??);
            produce_stopped = Some(Instant::now());
        }
        if latencies_ms.len() >= events
            || produce_stopped.is_some_and(|t| t.elapsed() > config.drain)
        {
            break;
        }
        let Some(done) = processed_silver_version(lake).await? else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if done > seen {
            let now = chrono::Utc::now().timestamp_millis();
            for sent in sent_times(lake, seen + 1..=done).await? {
                latencies_ms.push(now - sent);
            }
            seen = done;
            bar.set_message(format!("{} visible in gold", latencies_ms.len()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.finish_and_clear();
    let produced = produced.ok_or_else(|| anyhow::anyhow!("the producer did not finish"))?;
    latencies_ms.sort_unstable();
    Ok((produced, latencies_ms))
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn nearest_rank_takes_the_value_at_the_ceiling_of_p_times_n() {
        let sorted = [10, 20, 30, 40];
        assert_eq!(nearest_rank(&sorted, 0.5), Some(20));
        assert_eq!(nearest_rank(&sorted, 0.95), Some(40));
        assert_eq!(nearest_rank(&sorted, 0.0), Some(10));
        assert_eq!(nearest_rank(&sorted, 1.0), Some(40));
        assert_eq!(nearest_rank::<i64>(&[], 0.5), None);
    }
}
