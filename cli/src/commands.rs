//! The subcommands.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clickstream::functions::BronzeTrigger;
use clickstream::gold::parse_funnel;
use clickstream::lake::Lake;
use clickstream::pipeline::{Pipeline, Totals};
use clickstream::trigger::{self, KafkaMessage};
use clickstream_generator::{Generator, GeneratorConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::summary;
use crate::{
    DashboardArgs, DemoArgs, ForgetArgs, GenerateArgs, GeneratorArgs, IngestArgs, LakeArgs,
    MaintainArgs, ReportArgs, StatusArgs,
};

/// Topic name used in the Kafka batches of the demo.
const DEMO_TOPIC: &str = clickstream::settings::DEFAULT_TOPIC;
/// Partitions of the simulated topic.
const DEMO_PARTITIONS: i32 = 3;

fn generator_config(events: usize, g: &GeneratorArgs) -> Result<GeneratorConfig> {
    for (name, rate) in [
        ("duplicate", g.duplicate_rate),
        ("invalid", g.invalid_rate),
        ("late", g.late_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            bail!("--{name}-rate must be between 0 and 1, got {rate}");
        }
    }
    let mut cfg = GeneratorConfig::new(events);
    cfg.seed = g.seed;
    cfg.days = g.days.max(1);
    cfg.start = g.start.unwrap_or_else(|| {
        chrono::Utc::now().date_naive() - chrono::Duration::days(cfg.days as i64)
    });
    cfg.duplicate_rate = g.duplicate_rate;
    cfg.invalid_rate = g.invalid_rate;
    cfg.late_rate = g.late_rate;
    Ok(cfg)
}

fn open_lake(uri: &str) -> Result<Lake> {
    clickstream::settings::LakeSettings::at(uri, &clickstream::settings::Environment)
        .and_then(|settings| settings.open())
        .with_context(|| format!("opening lake {uri}"))
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Spawns a ticker that shows the pipeline's stage counters on the bar.
fn track(pipeline: &Pipeline, bar: &ProgressBar) -> tokio::task::JoinHandle<()> {
    let progress = pipeline.progress();
    let bar = bar.clone();
    tokio::spawn(async move {
        loop {
            let b = progress.bronze_records.load(Ordering::Relaxed);
            let s = progress.silver_records.load(Ordering::Relaxed);
            let g = progress.gold_invocations.load(Ordering::Relaxed);
            bar.set_position(s as u64);
            bar.set_message(format!("bronze {b} | silver {s} | gold runs {g}"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

pub async fn demo(args: DemoArgs) -> Result<()> {
    let cfg = generator_config(args.events, &args.generator)?;
    let lake = open_lake(&args.lake.lake)?;
    let started = Instant::now();
    // Each run produces to a new stream of offsets from 0, so each is its own Kafka generation:
    // a second run on the same lake adds its events (silver drops the ones already there)
    // instead of being refused as a recreated topic.
    let options = clickstream::bronze::BronzeOptions {
        kafka_generation: Some(format!("demo-{}", chrono::Utc::now().timestamp_micros())),
        ..Default::default()
    };
    let pipeline = Pipeline::start(lake.clone(), parse_funnel(args.funnel.as_deref()))
        .with_bronze_options(options);
    let bar = bar(args.events as u64, "starting");
    let ticker = track(&pipeline, &bar);

    let mut offsets = [0i64; DEMO_PARTITIONS as usize];
    let mut messages = Vec::with_capacity(args.batch_size as usize);
    let mut generator = Generator::new(cfg).enumerate().peekable();
    let now_ms = chrono::Utc::now().timestamp_millis();
    while generator.peek().is_some() {
        messages.clear();
        for (i, value) in generator.by_ref().take(args.batch_size as usize) {
            let partition = (i % DEMO_PARTITIONS as usize) as i32;
            let offset = &mut offsets[partition as usize];
            messages.push(KafkaMessage {
                partition,
                offset: *offset,
                timestamp_ms: now_ms,
                key: None,
                value: Some(value),
                ..Default::default()
            });
            *offset += 1;
        }
        let event = trigger::kafka_event("embedded:9092", DEMO_TOPIC, &messages);
        pipeline.bronze(&BronzeTrigger::Kafka(event)).await?;
    }
    let totals = pipeline.finish().await?;
    let pipeline_time = started.elapsed();
    bar.set_message("exporting");
    let export = clickstream_report::exporter(&lake).await?;
    ticker.abort();
    bar.finish_and_clear();
    let wall = started.elapsed();
    summary::print(
        &lake,
        &totals,
        Some(&export),
        pipeline_time,
        wall,
        args.json,
    )
    .await
}

/// A flag set when Ctrl-C is pressed (the producer then stops and waits for acknowledgements).
fn stop_on_ctrl_c() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    stop
}

/// Prints what a produce run did; an error when records were not acknowledged.
fn report_produced(produced: &crate::kafka::Produced, brokers: &str, topic: &str) -> Result<()> {
    eprintln!(
        "{} records acknowledged by {brokers} (topic {topic}) in {:.1}s, {:.0} records/s{}",
        produced.acknowledged,
        produced.elapsed.as_secs_f64(),
        produced.acknowledged as f64 / produced.elapsed.as_secs_f64().max(1e-9),
        if produced.failed > 0 {
            format!("; {} NOT acknowledged", produced.failed)
        } else {
            String::new()
        }
    );
    if produced.failed > 0 {
        bail!("{} records were not acknowledged", produced.failed);
    }
    Ok(())
}

/// `generate --live`: optionally a backfill of past days, then live traffic until Ctrl-C or
/// --duration, with a live line of the rate and the records acknowledged.
async fn generate_live(args: GenerateArgs) -> Result<()> {
    let Some(brokers) = &args.brokers else {
        bail!(
            "live traffic goes to Kafka: give --brokers (or KAFKA_BROKERS), or --events for a batch"
        );
    };
    let rate = if args.rate > 0.0 { args.rate } else { 100.0 };
    let cfg = generator_config(0, &args.generator)?;
    let stop = stop_on_ctrl_c();
    let now = chrono::Utc::now();
    if args.backfill_days > 0 {
        let days = args.backfill_days as usize;
        let mut history = cfg.clone();
        history.events = days * args.backfill_per_day;
        let bar = bar(history.events as u64, "history acknowledged");
        let from = now - chrono::Duration::days(days as i64);
        let records = Generator::over(history, from, now).map(|line| (None, line));
        let produced = crate::kafka::produce(brokers, &args.topic, records, &stop, &bar).await?;
        bar.finish_and_clear();
        report_produced(&produced, brokers, &args.topic)?;
    }
    let until = args
        .duration
        .map(|s| chrono::Utc::now() + chrono::Duration::milliseconds((s * 1000.0) as i64));
    let mut live =
        clickstream_generator::Live::new(cfg, rate, args.daily_curve, chrono::Utc::now());
    let records = std::iter::from_fn(move || {
        let (at, line) = live.next_due();
        until.is_none_or(|u| at < u).then_some((Some(at), line))
    });
    eprintln!(
        "live traffic to {brokers} (topic {}): {rate} events/s on average{}, event times from the \
         wall clock; {}",
        args.topic,
        if args.daily_curve {
            " over a daily curve"
        } else {
            ""
        },
        match args.duration {
            Some(s) => format!("for {s} s (Ctrl-C stops sooner)"),
            None => "Ctrl-C stops".to_string(),
        }
    );
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos} acknowledged, {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let produced = crate::kafka::produce(brokers, &args.topic, records, &stop, &bar).await?;
    bar.finish_and_clear();
    report_produced(&produced, brokers, &args.topic)
}

pub async fn generate(args: GenerateArgs) -> Result<()> {
    if args.is_live() {
        return generate_live(args).await;
    }
    let events = match args.duration {
        Some(seconds) if args.rate > 0.0 && seconds > 0.0 => (args.rate * seconds).round() as usize,
        Some(_) => bail!("a batch with --duration needs a positive --rate and duration"),
        None => args.events.unwrap_or(10_000),
    };
    let cfg = generator_config(events, &args.generator)?;
    if let (Some(brokers), None) = (&args.brokers, &args.output) {
        let bar = bar(events as u64, "acknowledged");
        let records = crate::kafka::paced(Generator::new(cfg), args.rate);
        let produced =
            crate::kafka::produce(brokers, &args.topic, records, &stop_on_ctrl_c(), &bar).await?;
        bar.finish_and_clear();
        return report_produced(&produced, brokers, &args.topic);
    }
    let out: Box<dyn Write> = match &args.output {
        Some(path) => {
            let file = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            );
            if path.extension().is_some_and(|e| e == "gz") {
                Box::new(clickstream::bronze::gzip_writer(file))
            } else {
                Box::new(file)
            }
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let bar = args.output.as_ref().map(|_| bar(events as u64, "records"));
    let mut out = out;
    for (i, line) in Generator::new(cfg).enumerate() {
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        if let Some(b) = &bar
            && i % 10_000 == 0
        {
            b.set_position(i as u64);
        }
    }
    out.flush()?;
    drop(out);
    if let (Some(b), Some(path)) = (bar, &args.output) {
        b.finish_and_clear();
        eprintln!("wrote {events} records to {}", path.display());
    }
    Ok(())
}

pub async fn ingest(args: IngestArgs) -> Result<()> {
    let lake = open_lake(&args.lake.lake)?;
    let options = clickstream::settings::bronze_options(&clickstream::settings::Environment)?;
    let started = Instant::now();
    let pipeline = Pipeline::start(lake.clone(), parse_funnel(args.funnel.as_deref()))
        .with_bronze_options(options);
    let bar = bar(args.files.len() as u64, "files");
    // A file that fails does not stop the others: what bronze took in still goes through silver
    // and gold, and the failures are reported (and make the command fail) at the end.
    let mut failed = Vec::new();
    for (i, file) in args.files.iter().enumerate() {
        let landed = async {
            let event = clickstream::bronze::land_file(&lake, file).await?;
            pipeline.bronze(&BronzeTrigger::Landed(event)).await
        };
        if let Err(e) = landed.await {
            let report = crate::error_report(&e.into());
            bar.suspend(|| eprintln!("error: {}: {report}", file.display()));
            failed.push(format!("{}: {report}", file.display()));
        }
        bar.set_position(i as u64 + 1);
    }
    let totals: Totals = pipeline.finish().await?;
    bar.finish_and_clear();
    for unreadable in &totals.unreadable_files {
        eprintln!("error: {unreadable} (recorded in bronze/failed_files)");
        failed.push(format!("{unreadable} (recorded in bronze/failed_files)"));
    }
    if failed.len() == args.files.len() {
        bail!("no file was ingested:\n  {}", failed.join("\n  "));
    }
    let elapsed = started.elapsed();
    summary::print(&lake, &totals, None, elapsed, elapsed, false).await?;
    if !failed.is_empty() {
        bail!(
            "{} of {} files were not ingested (the others were):\n  {}",
            failed.len(),
            args.files.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

pub async fn export(args: LakeArgs) -> Result<()> {
    let lake = open_lake(&args.lake)?;
    let outcome = clickstream_report::exporter(&lake).await?;
    for (table, rows) in &outcome.rows {
        println!("{table:>14}: {rows} rows");
    }
    for f in &outcome.files {
        println!("wrote {}", lake.url(f)?);
    }
    Ok(())
}

pub async fn maintain(args: MaintainArgs) -> Result<()> {
    let lake = open_lake(&args.lake.lake)?;
    let report =
        clickstream::maintenance::maintain(&lake, chrono::Duration::hours(args.retention_hours))
            .await?;
    println!(
        "{:<20} {:>12} {:>11} {:>8} {:>9}",
        "table", "files before", "files after", "version", "vacuumed"
    );
    for t in report {
        println!(
            "{:<20} {:>12} {:>11} {:>8} {:>9}",
            t.table, t.files_before, t.files_after, t.version, t.vacuumed
        );
    }
    Ok(())
}

/// Gold is staler than `status --max-lag` allows (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("gold is stale: {line}; --max-lag is {max_lag}")]
pub struct Stale {
    line: String,
    max_lag: String,
}

/// `clickstream status`: the lake's health, and the metrics in the local stack's logs.
pub async fn status(args: StatusArgs) -> Result<()> {
    let lake = open_lake(&args.lake.lake)?;
    let health = clickstream::health::read(&lake, chrono::Utc::now(), args.days).await?;
    let emitted = match &args.logs {
        Some(dir) => Some(
            clickstream::telemetry::emf::read_logs(dir)
                .with_context(|| format!("reading the logs in {}", dir.display()))?,
        ),
        None => None,
    };
    if args.json {
        let value = serde_json::json!({ "health": health, "emitted": emitted });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!(
            "{}",
            clickstream_report::health::render_status(&health, emitted.as_ref())
        );
    }
    match args.max_lag {
        Some(max_lag) if health.is_stale(max_lag) => Err(Stale {
            line: clickstream_report::health::freshness_line(&health),
            max_lag: humantime::format_duration(max_lag).to_string(),
        }
        .into()),
        _ => Ok(()),
    }
}

pub async fn forget(args: ForgetArgs) -> Result<()> {
    use clickstream::erasure::{self, ForgetOptions, Request};
    let lake = open_lake(&args.lake.lake)?;
    if args.list {
        let all = erasure::erasures(&lake).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(());
        }
        println!(
            "{:<40} {:<9} {:<25} {:<25}",
            "request", "status", "requested", "files removed by"
        );
        for e in all {
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_string(), |t| {
                    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
                })
            };
            let status = if e.completed_at.is_some() {
                "complete"
            } else {
                "started"
            };
            println!(
                "{:<40} {:<9} {:<25} {:<25}",
                e.request_id,
                status,
                time(e.requested_at),
                time(e.files_removed_by)
            );
        }
        return Ok(());
    }
    let identifier = args.identifier.context("an identifier to forget")?;
    let id = args
        .request_id
        .unwrap_or_else(|| format!("forget-{}", uuid::Uuid::new_v4()));
    let request = Request::new(&id, &identifier)?;
    // The request object first: a run that stops midway leaves it to be run again.
    request.put(&lake).await?;
    let options = ForgetOptions {
        now: args.now,
        retention: chrono::Duration::hours(args.retention_hours),
        funnel: parse_funnel(args.funnel.as_deref()),
    };
    let report = erasure::forget(&lake, &request, &options, async |lake: &Lake| {
        clickstream_report::exporter(lake).await.map(|_| ())
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        summary::print_erasure(&report);
    }
    if !report.landed_files_pending.is_empty() {
        bail!(
            "request {} is not complete: {} landed file(s) hold the person and bronze has not \
             read them yet; run this command again with --request-id {} after it has",
            report.request_id,
            report.landed_files_pending.len(),
            report.request_id
        );
    }
    Ok(())
}

pub async fn report(args: ReportArgs) -> Result<()> {
    let lake = open_lake(&args.lake.lake)?;
    let range = clickstream_report::dashboard::DateRange {
        from: args.range.from,
        to: args.range.to,
    };
    let data = clickstream_report::dashboard::load(&lake, range).await?;
    print!(
        "{}",
        clickstream_report::dashboard::render_report(&data, args.date)
    );
    if let Some(date) = args.date
        && data.headline(Some(date)).is_none()
    {
        bail!("gold has no figures for {date}");
    }
    Ok(())
}

pub async fn dashboard(args: DashboardArgs) -> Result<()> {
    let lake = open_lake(&args.lake.lake)?;
    let range = clickstream_report::dashboard::DateRange {
        from: args.range.from,
        to: args.range.to,
    };
    let key = clickstream_report::write_dashboard(&lake, range).await?;
    let url = lake.url(&key)?;
    println!("wrote {url}");
    if args.open {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        std::process::Command::new(opener)
            .arg(url.as_str())
            .status()
            .with_context(|| format!("running {opener} to open the dashboard"))?;
    }
    Ok(())
}

pub async fn bridge(args: crate::BridgeArgs) -> Result<()> {
    let lake = open_lake(&args.lake.lake)?;
    // Its requests to the lake, as EMF lines in its log every second.
    match clickstream::telemetry::emf::install(crate::bridge::BRIDGE_STAGE) {
        Ok(()) => {
            tokio::spawn(async {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every.tick().await;
                    clickstream::telemetry::emf::flush(std::io::stdout().lock());
                }
            });
        }
        Err(e) => tracing::warn!("the bridge's metrics are not emitted: {e}"),
    }
    let config = crate::bridge::BridgeConfig {
        wiring: crate::wiring::Wiring::from_state_file(&args.wiring)?,
        brokers: args.brokers,
        lambda_endpoint: args.lambda_endpoint,
        poll_interval: Duration::from_millis(args.poll_ms),
        invoke_timeout: Duration::from_secs(args.invoke_timeout),
        retry_delay: Duration::from_millis(args.retry_delay_ms),
        schedule_speedup: args.schedule_speedup,
        state: args.state,
        dead_letters: args.dead_letters,
    };
    crate::bridge::run(lake, config).await
}

pub async fn freshness(args: crate::FreshnessArgs) -> Result<()> {
    let lake = open_lake(&args.lake.lake)?;
    let config = crate::bench::FreshnessConfig {
        brokers: args.kafka.brokers,
        topic: args.kafka.topic,
        rate: args.rate,
        duration: Duration::from_secs_f64(args.duration),
        drain: Duration::from_secs_f64(args.drain),
        days_ago: 1,
    };
    if args.find_ceiling {
        let ceiling = crate::bench_ceiling::CeilingConfig {
            first: config,
            step: args.step,
            max_rate: args.max_rate,
            max_p95: Duration::from_secs_f64(args.max_p95),
            logs: args.logs,
        };
        return crate::bench_ceiling::find_ceiling(&lake, ceiling).await;
    }
    crate::bench::freshness(&lake, config).await
}

pub async fn cost(args: crate::CostArgs) -> Result<()> {
    let lake = open_lake(&args.lake.lake)?;
    let config = crate::bench_cost::CostConfig {
        workload: crate::bench::FreshnessConfig {
            brokers: args.kafka.brokers,
            topic: args.kafka.topic,
            rate: args.rate,
            duration: Duration::from_secs_f64(args.events as f64 / args.rate),
            drain: Duration::from_secs_f64(args.drain),
            days_ago: 1,
        },
        logs: args.logs,
        store_metrics: args.store_metrics,
        wiring: args.wiring,
        lambda_endpoint: args.lambda_endpoint,
    };
    crate::bench_cost::cost(&lake, config).await
}

pub async fn serve(args: crate::ServeArgs) -> Result<()> {
    let lake = open_lake(&args.lake.lake)?;
    let options = crate::serve::ServeOptions {
        max_connections: args.max_connections.max(1),
        header_timeout: Duration::from_secs(args.header_timeout.max(1)),
        allowed_hosts: args.allowed_hosts,
    };
    crate::serve::serve(
        lake,
        std::net::SocketAddr::new(args.bind, args.port),
        options,
    )
    .await
}
