//! Benchmarks of the stages themselves: `bench pipeline` (one corpus through the streaming shape,
//! one landed file, DuckDB and the floor side by side) and `bench history` (cost per batch against the
//! length of history, warm and cold).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clickstream::bronze::BronzeOptions;
use clickstream::functions::{self, BronzeTrigger, commit_event};
use clickstream::gold::parse_funnel;
use clickstream::lake::{Lake, Table};
use clickstream::pipeline::{Pipeline, Totals};
use clickstream::trigger::{self, KafkaMessage};
use clickstream_generator::{Generator, GeneratorConfig};

use crate::summary::peak_rss_mib;

/// The runs of `bench pipeline`, in the order they run (DuckDB first: the others' ratio is to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PipelineRun {
    /// The floor of the work: read the corpus, parse it into typed columns, write Parquet once.
    Floor,
    /// DuckDB SQL over the corpus, in process.
    Duckdb,
    /// The streaming shape: Kafka batches through bronze, silver and gold.
    Streaming,
    /// The corpus as one landed file.
    File,
}

impl PipelineRun {
    /// Its label in the report.
    fn label(self) -> &'static str {
        match self {
            PipelineRun::Floor => "(0) floor: parse + Parquet",
            PipelineRun::Duckdb => "(c) DuckDB SQL, in process",
            PipelineRun::Streaming => "(a) streaming, Kafka batches",
            PipelineRun::File => "(b) one landed file",
        }
    }

    /// Its name on the command line.
    fn name(self) -> String {
        use clap::ValueEnum as _;
        self.to_possible_value()
            .expect("no run is skipped")
            .get_name()
            .to_string()
    }
}

/// Writes `events` generated records (1% duplicates, 0.5% invalid, 1% late) to `path`.
fn write_corpus(path: &Path, events: usize, seed: u64) -> Result<()> {
    let mut cfg = GeneratorConfig::new(events);
    cfg.seed = seed;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for line in Generator::new(cfg) {
        out.write_all(&line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn stage_times(t: &Totals) -> String {
    format!(
        "bronze {:.1}s, silver {:.1}s, gold {:.1}s (in {} / {} / {} invocations)",
        t.bronze_seconds,
        t.silver_seconds,
        t.gold_seconds,
        t.bronze_commits,
        t.silver_commits,
        t.gold_invocations
    )
}

/// Kafka-style batches of `batch_size` lines of `corpus`, each committed to bronze and
/// triggering silver and gold as S3 notifications would.
async fn streaming(corpus: &Path, lake: &Lake, batch_size: usize) -> Result<Totals> {
    let pipeline = Pipeline::start(lake.clone(), parse_funnel(None));
    let reader = std::io::BufReader::new(std::fs::File::open(corpus)?);
    let mut messages = Vec::with_capacity(batch_size);
    let mut offset = 0i64;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut lines = reader.split(b'\n');
    loop {
        messages.clear();
        for line in lines.by_ref().take(batch_size) {
            messages.push(KafkaMessage {
                partition: 0,
                offset,
                timestamp_ms: now_ms,
                value: Some(line?),
                ..Default::default()
            });
            offset += 1;
        }
        if messages.is_empty() {
            break;
        }
        let event = trigger::kafka_event(
            "bench:9092",
            clickstream::settings::DEFAULT_TOPIC,
            &messages,
        );
        pipeline.bronze(&BronzeTrigger::Kafka(event)).await?;
    }
    Ok(pipeline.finish().await?)
}

/// The corpus landed as one file.
async fn one_file(corpus: &Path, lake: &Lake) -> Result<Totals> {
    let pipeline = Pipeline::start(lake.clone(), parse_funnel(None));
    let event = clickstream::bronze::land_file(lake, corpus).await?;
    pipeline.bronze(&BronzeTrigger::Landed(event)).await?;
    Ok(pipeline.finish().await?)
}

/// The SQL DuckDB runs for the comparison: the same cleaning, dedup, stitching (each event under
/// its person), sessions (30-minute gap) and daily figures, without Delta, exactly-once
/// bookkeeping or the full validation.
const DUCKDB_SQL: &str = r#"
CREATE TABLE raw AS SELECT * FROM read_json('{corpus}', format = 'newline_delimited',
  ignore_errors = true, columns = {event_id: 'VARCHAR', event_type: 'VARCHAR',
  event_time: 'VARCHAR', anonymous_id: 'VARCHAR', user_id: 'VARCHAR', page_url: 'VARCHAR',
  referrer: 'VARCHAR', device_type: 'VARCHAR', country: 'VARCHAR'});
CREATE TABLE silver AS
SELECT event_id, event_type, ts, user_key, anonymous_id, user_id, page_url,
       regexp_extract(page_url, '^[a-z]+://[^/]+(/[^?#]*)', 1) AS page_path, referrer,
       device_type, country, CAST(ts AS DATE) AS event_date
FROM (SELECT *, try_cast(event_time AS TIMESTAMP) AS ts, coalesce(user_id, anonymous_id) AS user_key
      FROM raw)
WHERE event_id IS NOT NULL AND event_type IS NOT NULL AND ts IS NOT NULL AND user_key IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1;
CREATE TABLE links AS
SELECT anonymous_id, user_id AS linked_user FROM silver
WHERE coalesce(anonymous_id, '') <> '' AND coalesce(user_id, '') <> ''
QUALIFY row_number() OVER (PARTITION BY anonymous_id ORDER BY ts DESC, event_id DESC) = 1;
CREATE OR REPLACE TABLE silver AS
SELECT silver.* REPLACE (coalesce(nullif(silver.user_id, ''), links.linked_user, silver.user_key) AS user_key)
FROM silver LEFT JOIN links ON silver.anonymous_id = links.anonymous_id;
CREATE TABLE sessions AS
WITH marked AS (
  SELECT *, CASE WHEN ts - lag(ts) OVER w <= INTERVAL 30 MINUTE THEN 0 ELSE 1 END AS starts
  FROM silver WINDOW w AS (PARTITION BY user_key ORDER BY ts, event_id)),
numbered AS (
  SELECT *, sum(starts) OVER (PARTITION BY user_key ORDER BY ts, event_id
                              ROWS UNBOUNDED PRECEDING) AS session_no FROM marked)
SELECT user_key, session_no, min(ts) AS session_start, max(ts) AS session_end,
       epoch(max(ts)) - epoch(min(ts)) AS duration_s, count(*) AS events,
       count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
       arg_min(page_path, ts) FILTER (WHERE event_type = 'page_view') AS entry_page,
       arg_max(page_path, ts) FILTER (WHERE event_type = 'page_view') AS exit_page,
       count(*) = 1 AND bool_and(event_type = 'page_view') AS is_bounce,
       bool_or(event_type = 'purchase') AS converted,
       CAST(min(ts) AS DATE) AS session_date
FROM numbered GROUP BY user_key, session_no;
CREATE TABLE user_days AS SELECT DISTINCT event_date AS d, user_key FROM silver;
CREATE TABLE daily_metrics AS
WITH active AS (
  SELECT days.d AS date,
         count(DISTINCT u.user_key) FILTER (WHERE u.d = days.d) AS dau,
         count(DISTINCT u.user_key) FILTER (WHERE u.d > days.d - 7) AS wau,
         count(DISTINCT u.user_key) AS mau
  FROM (SELECT DISTINCT d FROM user_days) days
  JOIN user_days u ON u.d BETWEEN days.d - 29 AND days.d GROUP BY days.d),
ev AS (SELECT event_date AS date, count(*) AS events,
              count(*) FILTER (WHERE event_type = 'page_view') AS page_views
       FROM silver GROUP BY 1),
se AS (SELECT session_date AS date, count(*) AS sessions, avg(duration_s) AS avg_duration,
              avg(is_bounce::INT) AS bounce_rate, avg(converted::INT) AS conversion_rate,
              avg(events) AS events_per_session FROM sessions GROUP BY 1)
SELECT * FROM active JOIN ev USING (date) LEFT JOIN se USING (date);
CREATE TABLE funnel_daily AS
SELECT session_date AS date, count(DISTINCT user_key) FILTER (WHERE converted) AS purchasers
FROM sessions GROUP BY 1;
CREATE TABLE page_daily AS
SELECT event_date AS date, page_path, count(*) AS page_views, count(DISTINCT user_key) AS users
FROM silver WHERE event_type = 'page_view' GROUP BY ALL;
"#;

fn duckdb(corpus: &Path) -> Result<String> {
    let db = duckdb::Connection::open_in_memory()?;
    let sql = DUCKDB_SQL.replace(
        "{corpus}",
        &corpus.display().to_string().replace('\'', "''"),
    );
    db.execute_batch(&sql)?;
    let count = |table: &str| -> Result<i64> {
        Ok(db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
    };
    Ok(format!(
        "silver {} rows, sessions {}, daily_metrics {}",
        count("silver")?,
        count("sessions")?,
        count("daily_metrics")?
    ))
}

fn temp_lake(name: &str) -> Result<(tempfile::TempDir, Lake)> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("clickstream-bench-{name}-"))
        .tempdir()?;
    let lake = Lake::open(&dir.path().display().to_string())?;
    Ok((dir, lake))
}

/// `bench pipeline`: one corpus through (a) the streaming shape, (b) one landed file and (c) DuckDB,
/// side by side in one command, each run in a fresh child process (so that one run's heap and
/// peak RSS do not carry into the next); wall time, time per stage, peak RSS, ratio to DuckDB.
pub async fn pipeline(events: usize, batch_size: usize, only: Option<PipelineRun>) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("clickstream-bench-corpus-")
        .tempdir()?;
    let corpus = dir.path().join("corpus.jsonl");
    let started = Instant::now();
    write_corpus(&corpus, events, 42)?;
    let size = std::fs::metadata(&corpus)?.len();
    println!(
        "corpus: {events} events, {:.0} MB NDJSON (written in {:.1}s); {} cores",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<30} {:>9} {:>10} {:>9} {:>13}  stages",
        "run", "wall", "vs DuckDB", "vs floor", "peak RSS"
    );
    let (mut duckdb_wall, mut floor_wall) = (None, None);
    let runs = [
        PipelineRun::Floor,
        PipelineRun::Duckdb,
        PipelineRun::Streaming,
        PipelineRun::File,
    ];
    for run in runs.into_iter().filter(|r| only.is_none_or(|o| o == *r)) {
        let label = run.label();
        let output = tokio::process::Command::new(std::env::current_exe()?)
            .args(["bench", "pipeline-run", "--run", &run.name(), "--corpus"])
            .arg(&corpus)
            .args(["--batch-size", &batch_size.to_string()])
            .output()
            .await
            .with_context(|| format!("running {label} in a child process"))?;
        if !output.status.success() {
            bail!(
                "{label} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("reading the report of {label}"))?;
        let wall = report["wall_s"].as_f64().unwrap_or(f64::NAN);
        match run {
            PipelineRun::Duckdb => duckdb_wall = Some(wall),
            PipelineRun::Floor => floor_wall = Some(wall),
            _ => {}
        }
        let ratio = |to: Option<f64>| to.map_or("-".into(), |d| format!("{:.2}x", wall / d));
        println!(
            "{:<30} {:>8.2}s {:>10} {:>9} {:>9.0} MiB  {}",
            label,
            wall,
            ratio(duckdb_wall),
            ratio(floor_wall),
            report["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            report["stages"].as_str().unwrap_or_default()
        );
    }
    if batch_size != 10_000 {
        println!("(streaming batches of {batch_size} records)");
    }
    Ok(())
}

/// `bench pipeline-run`: one run of `bench pipeline` in this process; prints its wall time, peak
/// RSS and stage times as JSON.
pub async fn pipeline_run(corpus: &Path, run: PipelineRun, batch_size: usize) -> Result<()> {
    let (lake_dir, lake) = temp_lake(&run.name())?;
    let started = Instant::now();
    let (stages, totals) = match run {
        PipelineRun::Floor => {
            let out = lake_dir.path().join("floor.parquet");
            let floor = crate::bench_floor::floor(corpus, &out)?;
            let stages = format!(
                "{} rows, {} lines unparsed, {:.0} MB Parquet",
                floor.rows,
                floor.unparsed,
                floor.parquet_bytes as f64 / 1e6
            );
            (stages, None)
        }
        PipelineRun::Duckdb => (duckdb(corpus)?, None),
        PipelineRun::Streaming => {
            let totals = streaming(corpus, &lake, batch_size).await?;
            (stage_times(&totals), Some(totals))
        }
        PipelineRun::File => {
            let totals = one_file(corpus, &lake).await?;
            (stage_times(&totals), Some(totals))
        }
    };
    let wall = started.elapsed();
    if let Some(totals) = &totals {
        check_reconciles(totals)?;
    }
    println!(
        "{}",
        serde_json::json!({
            "wall_s": wall.as_secs_f64(),
            "peak_rss_mib": peak_rss_mib(),
            "stages": stages,
        })
    );
    Ok(())
}

fn check_reconciles(t: &Totals) -> Result<()> {
    if t.received != t.valid + t.quarantined + t.duplicates {
        bail!(
            "counts do not reconcile: {} received, {} valid + {} quarantined + {} duplicates",
            t.received,
            t.valid,
            t.quarantined,
            t.duplicates
        );
    }
    Ok(())
}

/// Settings of `bench history`.
pub struct HistoryConfig {
    pub days: Vec<u32>,
    pub events_per_day: usize,
    pub batches: usize,
    pub batch_events: usize,
    pub keep: Option<PathBuf>,
    /// Times the lengths are run in turn.
    pub rounds: usize,
}

/// A lake holding `days` days of `events_per_day` events each, ending yesterday, filled the way
/// a backfill would land it: one file per day.
async fn prefill(lake: &Lake, days: u32, events_per_day: usize) -> Result<()> {
    let today = chrono::Utc::now().date_naive();
    let pipeline = Pipeline::start(lake.clone(), parse_funnel(None));
    let bar = indicatif::ProgressBar::new(days as u64);
    let dir = tempfile::tempdir()?;
    for day in 0..days {
        let mut cfg = GeneratorConfig::new(events_per_day);
        cfg.seed = 1_000 + day as u64;
        cfg.start = today - chrono::Duration::days((days - day) as i64);
        cfg.days = 1;
        cfg.late_rate = 0.0;
        let file = dir.path().join(format!("day-{day:03}.jsonl"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for line in Generator::new(cfg) {
            out.write_all(&line)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        drop(out);
        let event = clickstream::bronze::land_file(lake, &file).await?;
        pipeline.bronze(&BronzeTrigger::Landed(event)).await?;
        std::fs::remove_file(&file)?;
        bar.inc(1);
    }
    let totals = pipeline.finish().await?;
    bar.finish_and_clear();
    check_reconciles(&totals)
}

/// Batch `n` of new events: `batch_events` events of yesterday (the newest day of the history),
/// 2% of them late by one to three days.
fn new_batch(n: usize, batch_events: usize, first_offset: i64) -> BronzeTrigger {
    let mut cfg = GeneratorConfig::new(batch_events);
    cfg.seed = 1_000_000 + n as u64;
    cfg.start = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    cfg.days = 1;
    cfg.late_rate = 0.02;
    cfg.users = Some(100_000 / 25);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let messages: Vec<KafkaMessage> = Generator::new(cfg)
        .enumerate()
        .map(|(i, value)| KafkaMessage {
            partition: 0,
            offset: first_offset + i as i64,
            timestamp_ms: now_ms,
            value: Some(value),
            ..Default::default()
        })
        .collect();
    BronzeTrigger::Kafka(trigger::kafka_event(
        "bench:9092",
        clickstream::settings::DEFAULT_TOPIC,
        &messages,
    ))
}

/// Milliseconds one batch spent in each stage.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StageMs {
    /// In bronze-writer.
    pub bronze: f64,
    /// In silver-transformer, over the bronze commits.
    pub silver: f64,
    /// In gold-transformer, over the silver commits.
    pub gold: f64,
}

impl StageMs {
    /// The same times to a tenth of a millisecond, for printing.
    fn rounded(self) -> StageMs {
        let tenth = |t: f64| (t * 10.0).round() / 10.0;
        StageMs {
            bronze: tenth(self.bronze),
            silver: tenth(self.silver),
            gold: tenth(self.gold),
        }
    }
}

/// One batch through bronze, silver and gold, as the functions would run it; the time in each.
pub async fn run_batch(lake: &Lake, batch: &BronzeTrigger) -> Result<StageMs> {
    let funnel = parse_funnel(None);
    let mut ms = StageMs::default();
    let started = Instant::now();
    let bronze = functions::bronze_writer(lake, batch, &BronzeOptions::default()).await?;
    ms.bronze = started.elapsed().as_secs_f64() * 1e3;
    for b in bronze {
        let Some(v) = b.version else { continue };
        let started = Instant::now();
        let silver =
            functions::silver_transformer(lake, &commit_event(lake, Table::Bronze, v)).await?;
        ms.silver += started.elapsed().as_secs_f64() * 1e3;
        for s in silver {
            if let Some(sv) = s.silver_version {
                let started = Instant::now();
                functions::gold_transformer(lake, &commit_event(lake, Table::Silver, sv), &funnel)
                    .await?;
                ms.gold += started.elapsed().as_secs_f64() * 1e3;
            }
        }
    }
    Ok(ms)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    crate::bench::nearest_rank(sorted, p).unwrap_or(f64::NAN)
}

/// The first new batch in a fresh process (`bench history-batch`): its report.
async fn cold_batch(lake_dir: &Path, batch_events: usize) -> Result<serde_json::Value> {
    let output = tokio::process::Command::new(std::env::current_exe()?)
        .args(["bench", "history-batch", "--lake"])
        .arg(lake_dir)
        .args(["--batch-events", &batch_events.to_string()])
        .output()
        .await
        .context("running the cold batch in a child process")?;
    if !output.status.success() {
        bail!(
            "cold batch failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("reading the cold batch's report")
}

/// `config.batches` new batches in this process, after one untimed batch to bring its state up:
/// the batch times and the bronze, silver and gold times (ms), each sorted.
async fn warm_batches(lake: &Lake, config: &HistoryConfig) -> Result<(Vec<f64>, [Vec<f64>; 3])> {
    let mut offset = 1_000_000_000i64;
    run_batch(lake, &new_batch(1, config.batch_events, offset)).await?;
    offset += config.batch_events as i64;
    let mut times = Vec::with_capacity(config.batches);
    let mut stages: [Vec<f64>; 3] = Default::default();
    let bar = indicatif::ProgressBar::new(config.batches as u64);
    for n in 0..config.batches {
        let batch = new_batch(n + 2, config.batch_events, offset);
        offset += config.batch_events as i64;
        let started = Instant::now();
        let per_stage = run_batch(lake, &batch).await?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        for (all, t) in stages
            .iter_mut()
            .zip([per_stage.bronze, per_stage.silver, per_stage.gold])
        {
            all.push(t);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for all in stages.iter_mut().chain([&mut times]) {
        all.sort_by(f64::total_cmp);
    }
    Ok((times, stages))
}

/// `bench history`: per history length, a pre-filled lake, then the first batch in a cold process
/// (a child process of this command), then `batches` batches in this warm process.
pub async fn history(config: HistoryConfig) -> Result<()> {
    println!(
        "history: {} events/day; {} batches of {} new events (2% late) after each history",
        config.events_per_day, config.batches, config.batch_events
    );
    println!(
        "{:>8} {:>10} {:>12} {:>12} {:>12} {:>15} {:>15}",
        "history", "prefill", "warm p50", "warm p95", "warm max", "cold 1st batch", "cold peak RSS"
    );
    let mut ratios = Vec::new();
    for round in 1..=config.rounds {
        if config.rounds > 1 {
            println!("round {round} of {}", config.rounds);
        }
        let p50s = history_round(&config, round).await?;
        if let (Some((short, a)), Some((long, b))) = (p50s.first(), p50s.last()) {
            println!("warm p50 at {long} days / at {short} days: {:.2}x", b / a);
            ratios.push(b / a);
        }
    }
    if ratios.len() > 1 {
        let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "longest / shortest over {} rounds: {}; median {:.2}x",
            ratios.len(),
            listed.join(", "),
            percentile(&ratios, 0.5)
        );
    }
    Ok(())
}

/// Each length of history of `config` once, each on a new lake: the warm p50 per length.
async fn history_round(config: &HistoryConfig, round: usize) -> Result<Vec<(u32, f64)>> {
    let mut p50s = Vec::new();
    for &days in &config.days {
        let (dir, lake) = temp_lake(&format!("history-{days}d"))?;
        let started = Instant::now();
        prefill(&lake, days, config.events_per_day).await?;
        let prefill_time = started.elapsed();
        let cold = cold_batch(dir.path(), config.batch_events).await?;
        let (times, [bronze, silver, gold]) = warm_batches(&lake, config).await?;
        let differences =
            clickstream_testkit::differences_from_scratch(&lake, &parse_funnel(None)).await?;
        if !differences.is_empty() {
            bail!("gold differs from a full recomputation: {differences:?}");
        }
        let p50 = percentile(&times, 0.5);
        p50s.push((days, p50));
        println!(
            "{:>7}d {:>9.1}s {:>10.1}ms {:>10.1}ms {:>10.1}ms {:>13.1}ms {:>11.0} MiB",
            days,
            prefill_time.as_secs_f64(),
            p50,
            percentile(&times, 0.95),
            percentile(&times, 1.0),
            cold["batch_ms"].as_f64().unwrap_or(f64::NAN),
            cold["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
        );
        println!(
            "{:>8} warm p50 per stage: bronze {:.1}ms, silver {:.1}ms, gold {:.1}ms; cold: {}",
            "",
            percentile(&bronze, 0.5),
            percentile(&silver, 0.5),
            percentile(&gold, 0.5),
            cold["stages_ms"]
        );
        if let Some(keep) = &config.keep {
            let name = match round {
                1 => format!("history-{days}d"),
                n => format!("history-{days}d-round{n}"),
            };
            let target = keep.join(name);
            std::fs::rename(dir.keep(), &target)?;
            println!("kept the lake at {}", target.display());
        }
    }
    Ok(p50s)
}

/// `bench history-batch`: one new batch in this (cold) process; prints its time and peak RSS as
/// JSON.
pub async fn history_batch(
    lake: &Lake,
    batch_events: usize,
    batches: usize,
    first_offset: i64,
) -> Result<()> {
    // Batch numbers (and so the events) follow from the offsets: a later call with higher
    // offsets brings new events.
    let first = first_offset as usize / batch_events.max(1);
    let batch = new_batch(first, batch_events, first_offset);
    let started = Instant::now();
    let stages_ms = run_batch(lake, &batch).await?;
    let batch_ms = started.elapsed().as_secs_f64() * 1e3;
    for n in 1..batches {
        let offset = first_offset + (n * batch_events) as i64;
        run_batch(lake, &new_batch(first + n, batch_events, offset)).await?;
    }
    println!(
        "{}",
        serde_json::json!({
            "batch_ms": batch_ms,
            "stages_ms": stages_ms.rounded(),
            "peak_rss_mib": peak_rss_mib()
        })
    );
    Ok(())
}
