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
        latest: shown.map(|h| h.day.clone()),
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
    // With other writers at once, this run's silver may process some of their bronze rows and
    // they some of this run's: what must hold is that every row this run's silver read is
    // accounted for, and that silver has processed every bronze commit this run made.
    let silver_done = clickstream::silver::watermark(lake).await?;
    let all_processed = totals.bronze_last_version.is_none_or(|v| silver_done >= v);
    let shared_with_others = totals.silver_input != totals.bronze_written;
    let reconciled = accounted == totals.silver_input && all_processed;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "totals": totals,
                "reconciled": reconciled,
                "silver_watermark": silver_done,
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
        totals.silver_input,
        totals.valid,
        totals.quarantined,
        totals.duplicates,
        if reconciled { "OK" } else { "MISMATCH" }
    );
    if shared_with_others {
        println!(
            "  (this run wrote {} bronze rows and its silver read {}: other writers at once \
             processed some of each other's rows; silver has processed every bronze commit \
             up to version {silver_done}{})",
            totals.bronze_written,
            totals.silver_input,
            if all_processed {
                ", this run's included"
            } else {
                ", NOT this run's last"
            }
        );
    }
    println!();
    if let Some(d) = &h.latest {
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
