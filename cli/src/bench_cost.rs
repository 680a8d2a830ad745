//! `clickstream bench cost`: what a million events cost on AWS, measured on a running local stack
//! (localstack/up) as deployed. Lambda: every function's invocations and billed duration (the
//! HandlerDuration in the EMF lines of its log) x its memory (from the deployment). S3: the
//! requests by type each function's metered client counted, checked against the S3 store's own
//! counters (SeaweedFS's Prometheus metrics) less the bridge's and this process's requests. Priced
//! at AWS's published arm64 Lambda and S3 Standard list prices; a scheduled function (exporter,
//! maintenance) is run once and priced per run at its schedule's rate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clickstream::lake::Lake;
use clickstream::telemetry::emf;
use clickstream::telemetry::{REQUEST, metric};

use crate::bench::FreshnessConfig;
use crate::bridge::{BRIDGE_STAGE, Invoker};
use crate::wiring::Wiring;

/// When the prices below were read (aws.amazon.com/lambda/pricing, aws.amazon.com/s3/pricing;
/// us-east-1, first tier).
pub const PRICES_AS_OF: &str = "2026-12-06";
/// Lambda on arm64 (Graviton), per GB-second of billed duration.
pub const LAMBDA_ARM64_PER_GB_SECOND: f64 = 0.000_013_333_4;
/// Lambda, per request.
pub const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
/// S3 Standard PUT, COPY, POST and LIST requests, each.
pub const S3_PUT_LIST_PER_REQUEST: f64 = 0.005 / 1e3;
/// S3 Standard GET, SELECT and every other request, each (DELETE is free).
pub const S3_GET_PER_REQUEST: f64 = 0.0004 / 1e3;
/// The AWS "Clickstream Analytics on AWS" solution's published cost, per million requests at
/// 1,000 requests/s, by its own cost tables (low and high).
pub const AWS_SOLUTION_PER_MILLION: (f64, f64) = (0.48, 0.82);
/// The target: Lambda + S3 per million events at 1,000 events/s with the Terraform defaults.
pub const TARGET_PER_MILLION: f64 = 0.10;

/// The stage of this process's own metrics (its polling of gold, taken out of the store's counts).
const BENCH_STAGE: &str = "bench";

/// What `bench cost` runs.
pub struct CostConfig {
    /// The workload: rate, events (as rate x duration), and the drain.
    pub workload: FreshnessConfig,
    /// The stack's logs (the functions' and the bridge's EMF lines).
    pub logs: PathBuf,
    /// The S3 store's Prometheus metrics.
    pub store_metrics: String,
    /// The deployment's Terraform state (memory per function, schedules, Kafka batching).
    pub wiring: PathBuf,
    /// The Lambda Invoke API of the stack (for one run of each scheduled function).
    pub lambda_endpoint: String,
}

/// S3 requests by type (`GET`, `PUT`, `LIST`, `DELETE`, ...).
type Requests = BTreeMap<String, f64>;

/// The dollars of `requests` at S3's list prices.
fn s3_dollars(requests: &Requests) -> f64 {
    requests
        .iter()
        .map(|(kind, n)| match kind.as_str() {
            "PUT" | "POST" | "COPY" | "LIST" => n * S3_PUT_LIST_PER_REQUEST,
            "DELETE" => 0.0,
            _ => n * S3_GET_PER_REQUEST,
        })
        .sum()
}

/// The S3 store's request counters of `bucket`, by type (SeaweedFS's
/// `SeaweedFS_s3_request_total{bucket,code,type}`, summed over the codes; it counts a HEAD as
/// a GET, as S3 prices it).
async fn store_requests(url: &str, bucket: &str) -> Result<Requests> {
    let text = reqwest::get(url)
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("reading the S3 store's metrics at {url}"))?
        .text()
        .await?;
    let mut requests = Requests::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("SeaweedFS_s3_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels.split(',').find_map(|l| {
                l.strip_prefix(&format!("{name}=\""))
                    .and_then(|v| v.strip_suffix('"'))
            })
        };
        if label("bucket") != Some(bucket) {
            continue;
        }
        if let (Some(kind), Ok(n)) = (label("type"), value.trim().parse::<f64>()) {
            *requests.entry(kind.to_string()).or_default() += n;
        }
    }
    Ok(requests)
}

/// The store requests the EMF documents in `text` counted, by [`REQUEST`] (which [`emf::read`]
/// sums over).
fn requests_in(text: &str) -> Requests {
    let mut requests = Requests::new();
    for line in text.lines().filter(|l| l.contains(metric::STORE_REQUESTS)) {
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(kind), Some(n)) = (doc[REQUEST].as_str(), doc[metric::STORE_REQUESTS].as_f64())
        {
            *requests.entry(kind.to_string()).or_default() += n;
        }
    }
    requests
}

/// The lines `stage` wrote to its log in `logs` after its first `skip_lines`.
pub(crate) fn new_lines(logs: &std::path::Path, stage: &str, skip_lines: usize) -> String {
    let text = std::fs::read_to_string(logs.join(format!("{stage}.log"))).unwrap_or_default();
    text.lines().skip(skip_lines).collect::<Vec<_>>().join("\n")
}

/// Requests by type, summed.
fn sum_of(requests: &Requests) -> f64 {
    requests.values().sum()
}

/// The lines of the file at `path` (0 when there is none).
pub(crate) fn lines_in(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// One function's bill over the run.
#[derive(Debug, Default)]
struct Bill {
    invocations: u64,
    gb_seconds: f64,
    requests: Requests,
    /// Per million events: Lambda, S3.
    lambda: f64,
    s3: f64,
    /// How it scales: per event processed, or per scheduled run.
    basis: String,
}

/// Runs the workload on the stack and prints dollars per million events, per function and in
/// total.
pub async fn cost(lake: &Lake, config: CostConfig) -> Result<()> {
    let wiring = Wiring::from_state_file(&config.wiring)?;
    let workload = &config.workload;
    let events = (workload.rate * workload.duration.as_secs_f64()).round() as usize;
    let batching = wiring
        .kafka
        .as_ref()
        .map_or("no Kafka mapping".into(), |k| {
            format!(
                "Kafka batches of up to {} records, {:?} window",
                k.batch_size, k.batching_window
            )
        });
    println!(
        "cost: {events} events at {} events/s; {batching}; memory {:?} MB",
        workload.rate, wiring.memory_mb
    );
    if let Err(e) = emf::install(BENCH_STAGE) {
        bail!("counting this process's own requests: {e}");
    }
    let bucket = lake.bucket().to_string();
    let logs_before: BTreeMap<String, usize> = wiring
        .memory_mb
        .keys()
        .chain(std::iter::once(&BRIDGE_STAGE.to_string()))
        .map(|f| (f.clone(), lines_in(&config.logs.join(format!("{f}.log")))))
        .collect();
    let store_before = store_requests(&config.store_metrics, &bucket).await?;

    let (produced, latencies) = crate::bench::through_gold(lake, workload).await?;
    if latencies.len() < events {
        bail!(
            "{} of {events} events did not reach gold within {:?}: the stack did not keep up at {} \
             events/s, so no cost is measured",
            events - latencies.len(),
            workload.drain,
            workload.rate
        );
    }
    // One run of each scheduled function, as its schedule would start it: what one costs.
    let invoker = Invoker::new(&config.lambda_endpoint, Duration::from_secs(900));
    for schedule in &wiring.schedules {
        invoker
            .invoke(&schedule.function, &schedule.input)
            .await
            .with_context(|| format!("running {} as scheduled", schedule.function))?;
    }
    // The bridge writes its metrics every second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut own = Vec::new();
    emf::flush(&mut own);
    let own = requests_in(&String::from_utf8_lossy(&own));
    let store_after = store_requests(&config.store_metrics, &bucket).await?;

    // The store's counts over the run, and the bridge's (it stands in for S3 notifications, the
    // Kafka mapping and the Scheduler, which AWS does not bill by request).
    let mut store: Requests = store_after;
    for (kind, n) in &store_before {
        *store.entry(kind.clone()).or_default() -= n;
    }
    let bridge = requests_in(&new_lines(
        &config.logs,
        BRIDGE_STAGE,
        logs_before[BRIDGE_STAGE],
    ));

    let per_million = 1e6 / events as f64;
    let events_per_hour = workload.rate * 3600.0;
    let mut bills: BTreeMap<String, Bill> = BTreeMap::new();
    for (function, memory_mb) in &wiring.memory_mb {
        // What the function wrote during the run: its invocations' durations and requests.
        let written = new_lines(&config.logs, function, logs_before[function]);
        let (ms, invocations) = emf::read(&written)
            .get(function)
            .and_then(|sums| sums.get(metric::HANDLER_DURATION))
            .map_or((0.0, 0), |d| (d.sum, d.samples));
        if invocations == 0 {
            continue;
        }
        // Lambda bills each invocation's duration rounded up to the millisecond; the handler's
        // is recorded truncated.
        let billed_s = (ms + invocations as f64) / 1e3;
        let gb_seconds = billed_s * *memory_mb as f64 / 1024.0;
        let lambda =
            gb_seconds * LAMBDA_ARM64_PER_GB_SECOND + invocations as f64 * LAMBDA_PER_REQUEST;
        let requests = requests_in(&written);
        let s3 = s3_dollars(&requests);
        let schedule = wiring.schedules.iter().find(|s| &s.function == function);
        let (scale, basis) = match schedule {
            // A scheduled function costs per run: runs per hour over events per hour.
            Some(s) => {
                let runs_per_hour = 3600.0 / s.every.as_secs_f64();
                (
                    runs_per_hour / invocations as f64 / events_per_hour * 1e6,
                    format!("per run, {}", s.expression),
                )
            }
            None => (per_million, "per event".to_string()),
        };
        bills.insert(
            function.clone(),
            Bill {
                invocations,
                gb_seconds,
                requests,
                lambda: lambda * scale,
                s3: s3 * scale,
                basis,
            },
        );
    }

    if bills.is_empty() {
        bail!(
            "no function invocation in the logs of {}: are they the running stack's?",
            config.logs.display()
        );
    }
    println!(
        "  produced     {} acknowledged in {:.1}s; all in gold, p50 {:.1}s and p95 {:.1}s after \
         produce",
        produced.acknowledged,
        produced.elapsed.as_secs_f64(),
        latencies[latencies.len() / 2] as f64 / 1e3,
        latencies[latencies.len() * 95 / 100] as f64 / 1e3
    );
    println!(
        "\n{:<20} {:>11} {:>10} {:>8} {:>8} {:>8} {:>12} {:>10} {:>10}  basis",
        "function",
        "invocations",
        "GB-s",
        "GET",
        "PUT",
        "LIST",
        "Lambda $/M",
        "S3 $/M",
        "total $/M"
    );
    let (mut lambda_total, mut s3_total) = (0.0, 0.0);
    for (function, b) in &bills {
        let n = |k: &str| b.requests.get(k).copied().unwrap_or(0.0);
        println!(
            "{:<20} {:>11} {:>10.1} {:>8} {:>8} {:>8} {:>12.4} {:>10.4} {:>10.4}  {}",
            function,
            b.invocations,
            b.gb_seconds,
            n("GET") + n("HEAD"),
            n("PUT"),
            n("LIST"),
            b.lambda,
            b.s3,
            b.lambda + b.s3,
            b.basis
        );
        lambda_total += b.lambda;
        s3_total += b.s3;
    }
    let total = lambda_total + s3_total;
    println!(
        "{:<20} {:>11} {:>10} {:>8} {:>8} {:>8} {:>12.4} {:>10.4} {:>10.4}",
        "total", "", "", "", "", "", lambda_total, s3_total, total
    );
    // The functions' own counts price each one's requests by type; the store's counters check
    // them: what the store served, less the bridge's and this process's requests.
    let n = |r: &Requests, k: &str| r.get(k).copied().unwrap_or(0.0);
    let functions: f64 = bills.values().map(|b| sum_of(&b.requests)).sum();
    let store_functions = sum_of(&store) - sum_of(&bridge) - sum_of(&own);
    println!(
        "\nS3 store's own counters over the run: GET {} PUT {} LIST {} DELETE {}; less the \
         bridge's {:.0} and this bench's {:.0}: {store_functions:.0} requests from the functions, \
         which counted {functions:.0} themselves ({:+.1}%)",
        n(&store, "GET"),
        n(&store, "PUT"),
        n(&store, "LIST"),
        n(&store, "DELETE"),
        sum_of(&bridge),
        sum_of(&own),
        (functions - store_functions) * 100.0 / store_functions.max(1.0)
    );
    println!(
        "\nprices: arm64 Lambda ${LAMBDA_ARM64_PER_GB_SECOND}/GB-s + ${:.2}/M requests, S3 ${:.4}/1k \
         PUT/LIST, ${:.4}/1k GET (list prices as of {PRICES_AS_OF})",
        LAMBDA_PER_REQUEST * 1e6,
        S3_PUT_LIST_PER_REQUEST * 1e3,
        S3_GET_PER_REQUEST * 1e3
    );
    println!(
        "beside: the AWS Clickstream Analytics solution, ${:.2}-{:.2} per million requests at 1,000 \
         requests/s; target here: under ${TARGET_PER_MILLION:.2} per million events at 1,000 \
         events/s with the Terraform defaults: {}",
        AWS_SOLUTION_PER_MILLION.0,
        AWS_SOLUTION_PER_MILLION.1,
        if total < TARGET_PER_MILLION {
            "met at this workload"
        } else {
            "NOT met at this workload"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_requests_are_priced_by_tier() {
        let requests = Requests::from([
            ("PUT".into(), 1000.0),
            ("LIST".into(), 1000.0),
            ("GET".into(), 10_000.0),
            ("DELETE".into(), 500.0),
        ]);
        let dollars = s3_dollars(&requests);
        assert!((dollars - (0.005 * 2.0 + 0.004)).abs() < 1e-12, "{dollars}");
    }
}
