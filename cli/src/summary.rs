//! The end-of-run summary: records per stage, reconciliation, headline metrics, outputs.

use std::time::Duration;

use anyhow::Result;
use clickstream::export::ExportOutcome;
use clickstream::lake::Lake;
use clickstream::pipeline::Totals;
use clickstream::rows::DailyMetrics;
use serde_json::json;

/// Headline figures: the latest complete day of gold/daily_metrics (or the day in progress when
/// there is no complete day yet), and totals over all days.
#[derive(Debug, Default, serde::Serialize)]
pub struct Headline {
    pub latest: Option<DailyMetrics>,
    /// `latest` is the day in progress (gold has no complete day yet).
    pub latest_is_partial: bool,
    pub dates: usize,
    pub total_sessions: i64,
    pub total_events: i64,
}

async fn headline(lake: &Lake) -> Result<Headline> {
    let data = clickstream_report::dashboard::load(lake, Default::default()).await?;
    let shown = data.headline(None);
    Ok(Headline {
        latest: shown.map(|h| *h.day),
        latest_is_partial: shown.is_some_and(|h| h.day_is_partial),
        dates: data.days.len(),
        total_sessions: data.days.iter().map(|d| d.sessions).sum(),
        total_events: data.days.iter().map(|d| d.events).sum(),
    })
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

/// Whether the run's counts reconcile: every row its silver read is accounted for, and silver has
/// processed every bronze commit the run made. With other writers at once, this run's silver may
/// process some of their bronze rows and they some of this run's.
struct Reconciliation {
    /// Silver's watermark: the last bronze version it processed.
    silver_done: i64,
    /// Silver has processed the run's last bronze commit.
    all_processed: bool,
    /// The run's silver read other than the rows its bronze wrote.
    shared_with_others: bool,
    /// Input = valid + quarantined + duplicates + suppressed, and everything processed.
    reconciled: bool,
}

impl Reconciliation {
    async fn of(lake: &Lake, totals: &Totals) -> Result<Reconciliation> {
        let accounted = totals.valid + totals.quarantined + totals.duplicates + totals.suppressed;
        let silver_done = clickstream::silver::watermark(lake).await?;
        let all_processed = totals.bronze_last_version.is_none_or(|v| silver_done >= v);
        Ok(Reconciliation {
            silver_done,
            all_processed,
            shared_with_others: totals.silver_input != totals.bronze_written,
            reconciled: accounted == totals.silver_input && all_processed,
        })
    }
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
    let r = Reconciliation::of(lake, totals).await?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "totals": totals,
                "reconciled": r.reconciled,
                "silver_watermark": r.silver_done,
                "headline": h,
                "pipeline_seconds": pipeline_time.as_secs_f64(),
                "wall_seconds": wall.as_secs_f64(),
                "peak_rss_mib": peak_rss_mib(),
                "export": export,
                "lake": lake.root().as_str(),
            }))?
        );
    } else {
        println!(
            "Pipeline finished in {:.2}s, {:.2}s with export; {}; peak RSS {:.0} MiB",
            pipeline_time.as_secs_f64(),
            wall.as_secs_f64(),
            rate(totals.received, pipeline_time.as_secs_f64()),
            peak_rss_mib().unwrap_or(0.0)
        );
        print_stages(totals, export);
        print_reconciliation(totals, &r);
        print_gold(&h);
        println!();
        println!("Lake: {}", lake.root());
        for f in export.iter().flat_map(|e| &e.files) {
            println!("  {}", lake.url(f)?);
        }
    }
    if !r.reconciled {
        anyhow::bail!("counts do not reconcile");
    }
    Ok(())
}

/// The records of each stage, and what the export wrote.
fn print_stages(totals: &Totals, export: Option<&ExportOutcome>) {
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
    if totals.suppressed > 0 {
        println!(
            "  suppr.   {:>10}  of persons an erasure request named",
            totals.suppressed
        );
    }
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
        if let Some(stitched) = export.rows.get(clickstream::lake::Table::Identities.name()) {
            println!(
                "  people   {stitched:>10}  anonymous ids stitched to a user: gold counts them as that person"
            );
        }
    }
}

/// input = silver + quarantined + duplicates (+ suppressed), and what other writers at once
/// took of the rows.
fn print_reconciliation(totals: &Totals, r: &Reconciliation) {
    println!();
    let suppressed = match totals.suppressed {
        0 => String::new(),
        n => format!(" + suppressed {n}"),
    };
    println!(
        "Reconciliation: input {} = silver {} + quarantined {} + duplicates {}{suppressed}  -> {}",
        totals.silver_input,
        totals.valid,
        totals.quarantined,
        totals.duplicates,
        if r.reconciled { "OK" } else { "MISMATCH" }
    );
    if r.shared_with_others {
        println!(
            "  (this run wrote {} bronze rows and its silver read {}: other writers at once \
             processed some of each other's rows; silver has processed every bronze commit \
             up to version {}{})",
            totals.bronze_written,
            totals.silver_input,
            r.silver_done,
            if r.all_processed {
                ", this run's included"
            } else {
                ", NOT this run's last"
            }
        );
    }
}

/// The headline day of gold.
fn print_gold(h: &Headline) {
    println!();
    let Some(d) = &h.latest else {
        println!("Gold is empty.");
        return;
    };
    println!(
        "Gold ({} days, {} sessions, {} events); {} {}:",
        h.dates,
        h.total_sessions,
        h.total_events,
        if h.latest_is_partial {
            "no complete day yet; in progress"
        } else {
            "latest complete day"
        },
        d.date
    );
    println!(
        "  DAU {}  WAU {}  MAU {}  sessions {}  page views {}",
        d.dau, d.wau, d.mau, d.sessions, d.page_views
    );
    println!(
        "  conversion {:.2}%  bounce {:.2}%  avg session {:.0}s",
        d.conversion_rate * 100.0,
        d.bounce_rate * 100.0,
        d.avg_session_duration_s
    );
}

/// Prints what an erasure did.
pub fn print_erasure(report: &clickstream::erasure::ErasureReport) {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("-".to_string(), |t| {
            t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
        })
    };
    if report.already_complete {
        println!(
            "Request {} was already complete at {}: nothing to do.",
            report.request_id,
            time(report.completed_at)
        );
        return;
    }
    println!(
        "Erasure {} (identifier sha256 {}…): {} identifier(s) of the person",
        report.request_id,
        &report.identifier_hash[..12],
        report.identifiers
    );
    for (table, rows) in &report.rows_removed {
        let version = report.table_versions.get(table).copied().unwrap_or(-1);
        println!("  {table:<22} {rows:>8} rows removed   (version {version})");
    }
    if report.rows_redacted > 0 {
        println!(
            "  {:<22} {:>8} events of other persons with one of the person's devices cleared",
            "silver/events", report.rows_redacted
        );
    }
    for key in &report.landed_files_removed {
        println!("  deleted {key}");
    }
    for key in &report.landed_files_pending {
        println!("  PENDING {key}: bronze has not read it yet");
    }
    println!("  completed at      {}", time(report.completed_at));
    println!("  files removed by  {}", time(report.files_removed_by));
}
