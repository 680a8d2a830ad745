//! The end-of-run summary: records per stage, reconciliation, headline metrics, outputs.

use std::time::Duration;

use anyhow::Result;
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type};
use clickstream::export::ExportOutcome;
use clickstream::gold::from_days;
use clickstream::lake::{Lake, Table};
use clickstream::pipeline::Totals;
use serde_json::json;

/// Headline figures of the latest date in gold/daily_metrics.
#[derive(Debug, Default, serde::Serialize)]
pub struct Headline {
    pub date: Option<chrono::NaiveDate>,
    pub dates: usize,
    pub dau: i64,
    pub wau: i64,
    pub mau: i64,
    pub sessions: i64,
    pub page_views: i64,
    pub total_sessions: i64,
    pub total_events: i64,
    pub conversion_rate: f64,
    pub bounce_rate: f64,
    pub avg_session_duration_s: f64,
}

async fn headline(lake: &Lake) -> Result<Headline> {
    let table = lake.table(Table::DailyMetrics).await?;
    let batches: Vec<RecordBatch> = lake.read(&table, &[], None).await?;
    let mut h = Headline::default();
    let mut latest = i32::MIN;
    for b in &batches {
        let col = |n: &str| b.column_by_name(n).cloned();
        let (Some(date), Some(dau), Some(wau), Some(mau), Some(sessions), Some(events), Some(pv)) = (
            col("date"),
            col("dau"),
            col("wau"),
            col("mau"),
            col("sessions"),
            col("events"),
            col("page_views"),
        ) else {
            continue;
        };
        let (Some(conv), Some(bounce), Some(dur)) = (
            col("conversion_rate"),
            col("bounce_rate"),
            col("avg_session_duration_s"),
        ) else {
            continue;
        };
        let i64s = |a: &arrow::array::ArrayRef| a.as_primitive::<Int64Type>().clone();
        let f64s = |a: &arrow::array::ArrayRef| a.as_primitive::<Float64Type>().clone();
        let date = date.as_primitive::<Date32Type>();
        for i in 0..b.num_rows() {
            h.dates += 1;
            h.total_sessions += i64s(&sessions).value(i);
            h.total_events += i64s(&events).value(i);
            if date.value(i) > latest {
                latest = date.value(i);
                h.date = Some(from_days(latest));
                h.dau = i64s(&dau).value(i);
                h.wau = i64s(&wau).value(i);
                h.mau = i64s(&mau).value(i);
                h.sessions = i64s(&sessions).value(i);
                h.page_views = i64s(&pv).value(i);
                h.conversion_rate = f64s(&conv).value(i);
                h.bounce_rate = f64s(&bounce).value(i);
                h.avg_session_duration_s = f64s(&dur).value(i);
            }
        }
    }
    Ok(h)
}

fn rate(n: usize, secs: f64) -> String {
    if secs <= 0.0 {
        "-".into()
    } else {
        format!("{:.0} records/s", n as f64 / secs)
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Prints the summary of a run (text, or JSON with `json`).
pub async fn print(
    lake: &Lake,
    totals: &Totals,
    export: Option<&ExportOutcome>,
    pipeline_time: Duration,
    wall: Duration,
    as_json: bool,
) -> Result<()> {
    let h = headline(lake).await?;
    let accounted = totals.valid + totals.quarantined + totals.duplicates;
    let reconciled =
        accounted == totals.silver_input && totals.silver_input == totals.bronze_written;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "totals": totals,
                "reconciled": reconciled,
                "headline": h,
                "pipeline_seconds": pipeline_time.as_secs_f64(),
                "wall_seconds": wall.as_secs_f64(),
                "peak_rss_mib": peak_rss_mib(),
                "export": export,
                "lake": lake.root().as_str(),
            }))?
        );
        return Ok(());
    }
    println!(
        "Pipeline finished in {:.2}s, {:.2}s with export; {}; peak RSS {:.0} MiB",
        pipeline_time.as_secs_f64(),
        wall.as_secs_f64(),
        rate(totals.received, pipeline_time.as_secs_f64()),
        peak_rss_mib().unwrap_or(0.0)
    );
    println!();
    println!("  stage    records");
    println!("  input    {:>10}", totals.received);
    println!(
        "  bronze   {:>10}  written in {} commits ({} already written); {} in {:.2}s",
        totals.bronze_written,
        totals.bronze_commits,
        totals.bronze_already_written,
        rate(totals.received, totals.bronze_seconds),
        totals.bronze_seconds
    );
    println!(
        "  silver   {:>10}  valid, in {} commits; {} in {:.2}s",
        totals.valid,
        totals.silver_commits,
        rate(totals.silver_input, totals.silver_seconds),
        totals.silver_seconds
    );
    let reasons: Vec<String> = totals
        .quarantined_by_reason
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    println!(
        "  quarant. {:>10}  ({})",
        totals.quarantined,
        reasons.join(", ")
    );
    println!(
        "  dupes    {:>10}  event_id already in silver",
        totals.duplicates
    );
    println!(
        "  gold     {:>10}  invocations ({} found gold up to date); {} in {:.2}s",
        totals.gold_invocations,
        totals.gold_up_to_date,
        rate(totals.valid, totals.gold_seconds),
        totals.gold_seconds
    );
    if let Some(export) = export {
        let rows: Vec<String> = export
            .rows
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        println!(
            "  export   {:>10}  gold rows ({})",
            export.rows.values().sum::<usize>(),
            rows.join(", ")
        );
    }
    println!();
    println!(
        "Reconciliation: input {} = silver {} + quarantined {} + duplicates {}  -> {}",
        totals.bronze_written,
        totals.valid,
        totals.quarantined,
        totals.duplicates,
        if reconciled { "OK" } else { "MISMATCH" }
    );
    println!();
    if let Some(date) = h.date {
        println!(
            "Gold ({} days, {} sessions, {} events); latest day {date}:",
            h.dates, h.total_sessions, h.total_events
        );
        println!(
            "  DAU {}  WAU {}  MAU {}  sessions {}  page views {}",
            h.dau, h.wau, h.mau, h.sessions, h.page_views
        );
        println!(
            "  conversion {:.2}%  bounce {:.2}%  avg session {:.0}s",
            h.conversion_rate * 100.0,
            h.bounce_rate * 100.0,
            h.avg_session_duration_s
        );
    } else {
        println!("Gold is empty.");
    }
    println!();
    println!("Lake: {}", lake.root());
    if let Some(export) = export {
        for f in &export.files {
            println!("  {}", lake.url(f)?);
        }
    }
    if !reconciled {
        anyhow::bail!("counts do not reconcile");
    }
    Ok(())
}
