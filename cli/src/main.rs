//! `clickstream`: generate events, run the pipeline embedded on a local lake, ingest files, export.

mod bench;
mod bench_ceiling;
mod bench_cost;
mod bench_floor;
mod bench_landed;
mod bench_stages;
mod bridge;
mod commands;
mod kafka;
mod serve;
mod summary;
mod wiring;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clickstream::settings;

/// Environment variable: the Kafka brokers (the bridge, `generate`, `local`).
const ENV_KAFKA_BROKERS: &str = "KAFKA_BROKERS";
/// Environment variable: the Kafka topic.
const ENV_KAFKA_TOPIC: &str = "KAFKA_TOPIC";

/// Real-time clickstream analytics on Delta Lake: bronze -> silver -> gold -> DuckDB/CSV/Parquet.
#[derive(Parser, Debug)]
#[command(name = "clickstream", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate synthetic events and run them through every stage, embedded, then export.
    Demo(DemoArgs),
    /// Write synthetic events as JSON lines, or produce them to Kafka (--brokers).
    Generate(GenerateArgs),
    /// Land files under landing/ and run them through bronze, silver and gold.
    Ingest(IngestArgs),
    /// Export gold to exports/ (DuckDB, CSV, Parquet).
    Export(LakeArgs),
    /// Headline figures and top lists from gold, in the terminal.
    Report(ReportArgs),
    /// Regenerate exports/dashboard.html from gold.
    Dashboard(DashboardArgs),
    /// Serve the dashboard over HTTP (read-only), refreshed in the browser when gold changes.
    Serve(ServeArgs),
    /// Compact, checkpoint and vacuum every table (what the maintenance function does).
    Maintain(MaintainArgs),
    /// The pipeline's health: gold's freshness, each stage's lag, and per day the records each
    /// stage took, quarantined (with the reasons), dropped as duplicates and late. Exits 2 when
    /// gold is staler than --max-lag.
    Status(StatusArgs),
    /// Erase a person (a user_id or an anonymous_id, with every anonymous id stitched to them)
    /// from every table and export, and suppress their records from now on.
    Forget(ForgetArgs),
    /// Benchmarks besides the demo.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The local stack's stand-in for AWS (see localstack/up).
    #[command(subcommand)]
    Local(LocalCommand),
}

#[derive(Subcommand, Debug)]
enum LocalCommand {
    /// Deliver Kafka batches, S3 notifications and schedules to functions via the Lambda Invoke API.
    Bridge(BridgeArgs),
}

#[derive(Args, Debug)]
struct BridgeArgs {
    /// The deployment's Terraform state (an apply of infra/, e.g. to the local stack's AWS API
    /// emulator): the notifications, Kafka mapping, schedules and retries the bridge stands in for.
    #[arg(
        long,
        env = "DEPLOYMENT_STATE",
        default_value = ".stack/deploy/terraform.tfstate"
    )]
    wiring: PathBuf,
    /// Kafka bootstrap servers the event source mapping reads from.
    #[arg(long, env = ENV_KAFKA_BROKERS, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Lambda Invoke API endpoint (cargo lambda watch, LocalStack, or AWS through a proxy).
    #[arg(long, env = "LAMBDA_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    lambda_endpoint: String,
    /// How often the lake is listed for new objects and commits, in milliseconds.
    #[arg(long, env = "BRIDGE_POLL_MS", default_value_t = 100)]
    poll_ms: u64,
    /// Milliseconds before the first retry of a failed notification or scheduled run, doubled for
    /// each next one (AWS waits about a minute, then two).
    #[arg(long, env = "ASYNC_RETRY_DELAY_MS", default_value_t = 60_000)]
    retry_delay_ms: u64,
    /// Runs the deployed schedules this many times faster (1: at their rate).
    #[arg(long, env = "SCHEDULE_SPEEDUP", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    schedule_speedup: u32,
    /// Seconds an invocation may take before it counts as failed and is retried (Lambda's function
    /// timeout: a function process that dies mid-invocation never answers cargo-lambda's API).
    #[arg(long, env = "INVOKE_TIMEOUT_SECONDS", default_value_t = 900)]
    invoke_timeout: u64,
    /// File recording what has been delivered, so that a restart carries on from there.
    #[arg(
        long,
        env = "BRIDGE_STATE",
        default_value = ".stack/data/bridge-state.json"
    )]
    state: PathBuf,
    /// Where failed notifications and scheduled runs go after their retries (the stand-in for
    /// the deployed dead-letter queue; one JSON object a line).
    #[arg(
        long,
        env = "DEAD_LETTERS",
        default_value = ".stack/data/dead-letters.jsonl"
    )]
    dead_letters: PathBuf,
    #[command(flatten)]
    lake: LakeArgs,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Time opening a table with many small commits, before and after maintenance.
    TableOpen {
        /// Commits to write.
        #[arg(long, default_value_t = 1000)]
        commits: usize,
    },
    /// Latency from produce to visible in gold on a running local stack (localstack/up).
    Freshness(FreshnessArgs),
    /// Dollars per million events on AWS, measured on a running local stack (localstack/up):
    /// Lambda invocations and billed GB-seconds, and S3 requests by type.
    Cost(CostArgs),
    /// One corpus through the streaming shape, one landed file and DuckDB, side by side, with the
    /// floor of the work (parse into typed columns and write Parquet once).
    Pipeline {
        /// Events in the corpus.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Records per Kafka batch in the streaming shape.
        #[arg(long, default_value_t = 10_000)]
        batch_size: usize,
        /// Run only this one.
        #[arg(long, value_enum)]
        only: Option<bench_stages::PipelineRun>,
    },
    /// One run of `bench pipeline` in a fresh process (its child).
    #[command(hide = true)]
    PipelineRun {
        #[arg(long)]
        corpus: PathBuf,
        #[arg(long, value_enum)]
        run: bench_stages::PipelineRun,
        #[arg(long, default_value_t = 10_000)]
        batch_size: usize,
    },
    /// Bronze alone on a decompression bomb and on a huge plain file: wall time and peak RSS.
    LandedFiles {
        /// GiB of zeros the bomb expands to.
        #[arg(long, default_value_t = 1)]
        bomb_gib: u64,
        /// GiB of the plain file of generated events.
        #[arg(long, default_value_t = 2.0)]
        plain_gib: f64,
    },
    /// One file of `bench landed-files` in a fresh process (its child).
    #[command(hide = true)]
    LandedFileRun {
        #[arg(long)]
        file: PathBuf,
    },
    /// Cost per batch of new events against the length of history, warm and cold.
    History {
        /// Lengths of history to compare, in days (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "3,30")]
        days: Vec<u32>,
        /// Events per day of history.
        #[arg(long, default_value_t = 100_000)]
        events_per_day: usize,
        /// Batches of new events timed in the warm process.
        #[arg(long, default_value_t = 100)]
        batches: usize,
        /// Events per batch.
        #[arg(long, default_value_t = 1_000)]
        batch_events: usize,
        /// Keep the lakes in this directory (for profiling) instead of deleting them.
        #[arg(long)]
        keep: Option<PathBuf>,
        /// Run the lengths in turn this many times (3, 30, 3, 30, ...), each on a new lake, and
        /// print the longest against the shortest per round and their median.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// One batch in a fresh process (what `bench history` runs for its cold figure).
    #[command(hide = true)]
    HistoryBatch {
        #[arg(long)]
        batch_events: usize,
        /// Batches to run in this process; the report is the first one's (later batches are warm,
        /// for profiling a kept lake).
        #[arg(long, default_value_t = 1)]
        batches: usize,
        /// Kafka offset of the first event (offsets at or below what bronze holds are skipped).
        #[arg(long, default_value_t = 0)]
        first_offset: i64,
        #[command(flatten)]
        lake: LakeArgs,
    },
}

#[derive(Args, Debug)]
struct FreshnessArgs {
    /// Events per second to produce.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Seconds to produce for.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Seconds to wait after producing for the last events to reach gold.
    #[arg(long, default_value_t = 120.0)]
    drain: f64,
    /// Raise the rate round by round, from --rate, until the stack does not keep up; print the
    /// highest rate kept up, the stage that limits it and each stage's ceiling.
    #[arg(long)]
    find_ceiling: bool,
    /// With --find-ceiling: events/s added per round.
    #[arg(long, default_value_t = 10_000.0, requires = "find_ceiling")]
    step: f64,
    /// With --find-ceiling: the last round's rate at most.
    #[arg(long, default_value_t = 200_000.0, requires = "find_ceiling")]
    max_rate: f64,
    /// With --find-ceiling: a round keeps up when every event is in gold and its p95
    /// produce-to-gold is under this many seconds.
    #[arg(long, default_value_t = 10.0, requires = "find_ceiling")]
    max_p95: f64,
    /// With --find-ceiling: the stack's logs, where the functions write their metrics.
    #[arg(long, default_value = ".stack/logs", requires = "find_ceiling")]
    logs: PathBuf,
    #[command(flatten)]
    kafka: StackKafkaArgs,
    #[command(flatten)]
    lake: LakeArgs,
}

/// The running local stack's Kafka, which a benchmark produces to.
#[derive(Args, Debug)]
struct StackKafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = ENV_KAFKA_BROKERS, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topic the bridge consumes.
    #[arg(long, env = ENV_KAFKA_TOPIC, default_value = settings::DEFAULT_TOPIC)]
    topic: String,
}

#[derive(Args, Debug)]
struct CostArgs {
    /// Events per second to produce.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Events to produce (at --rate; the cost is given per million).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Seconds to wait after producing for the last events to reach gold.
    #[arg(long, default_value_t = 180.0)]
    drain: f64,
    /// The stack's logs, where the functions write their metrics.
    #[arg(long, default_value = ".stack/logs")]
    logs: PathBuf,
    /// The S3 store's Prometheus metrics (localstack/up writes it to .stack/env).
    #[arg(long, env = "S3_METRICS_URL")]
    store_metrics: String,
    /// The deployment's Terraform state: memory per function, schedules, Kafka batching.
    #[arg(
        long,
        env = "DEPLOYMENT_STATE",
        default_value = ".stack/deploy/terraform.tfstate"
    )]
    wiring: PathBuf,
    /// The stack's Lambda Invoke API.
    #[arg(long, env = "LAMBDA_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    lambda_endpoint: String,
    #[command(flatten)]
    kafka: StackKafkaArgs,
    #[command(flatten)]
    lake: LakeArgs,
}

#[derive(Args, Debug, Clone, Copy)]
struct RangeArgs {
    /// First day of the range shown (YYYY-MM-DD); default: the start of gold.
    #[arg(long, env = "CLICKSTREAM_FROM")]
    from: Option<chrono::NaiveDate>,
    /// Last day of the range shown (YYYY-MM-DD); default: the end of gold.
    #[arg(long, env = "CLICKSTREAM_TO")]
    to: Option<chrono::NaiveDate>,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Day of the headline figures (YYYY-MM-DD); default: the latest day in gold.
    #[arg(long, env = "CLICKSTREAM_REPORT_DATE")]
    date: Option<chrono::NaiveDate>,
    #[command(flatten)]
    range: RangeArgs,
    #[command(flatten)]
    lake: LakeArgs,
}

#[derive(Args, Debug)]
struct DashboardArgs {
    /// Open the dashboard in the default browser afterwards.
    #[arg(long)]
    open: bool,
    #[command(flatten)]
    range: RangeArgs,
    #[command(flatten)]
    lake: LakeArgs,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Port to listen on (0: any free port, printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on; only this machine by default.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Also answer requests for this host name (besides localhost and IP addresses; repeatable).
    #[arg(long = "allow-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,
    /// Most connections open at once.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Seconds a connection may take to send its request's headers.
    #[arg(long, default_value_t = 10)]
    header_timeout: u64,
    #[command(flatten)]
    lake: LakeArgs,
}

#[derive(Args, Debug)]
struct MaintainArgs {
    /// VACUUM keeps files removed less than this many hours ago.
    #[arg(long, env = settings::VACUUM_RETENTION_HOURS, default_value_t = clickstream::maintenance::DEFAULT_VACUUM_RETENTION_HOURS)]
    retention_hours: i64,
    #[command(flatten)]
    lake: LakeArgs,
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// Days of per-day counts to show.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
    /// Exit with status 2 when gold's newest event is older than this (e.g. 15m, 2h), or gold
    /// holds none: for cron and CI.
    #[arg(long, value_parser = humantime::parse_duration)]
    max_lag: Option<std::time::Duration>,
    /// The local stack's logs (e.g. .stack/logs): also show the metrics the functions emitted
    /// there (CloudWatch's Embedded Metric Format lines).
    #[arg(long)]
    logs: Option<PathBuf>,
    /// Print the health as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    lake: LakeArgs,
}

#[derive(Args, Debug)]
struct ForgetArgs {
    /// The user_id or anonymous_id to erase (omit with --list).
    #[arg(required_unless_present = "list")]
    identifier: Option<String>,
    /// The request's id, kept in audit/erasures (default: a new one). Running a request again
    /// finishes it if it stopped, and does nothing if it completed.
    #[arg(long)]
    request_id: Option<String>,
    /// Remove the rewritten files at once, instead of at maintenance's VACUUM after its retention
    /// (a reader of an older table version may then fail once and retry).
    #[arg(long)]
    now: bool,
    /// Maintenance's VACUUM retention, for when the files will be gone without --now.
    #[arg(long, env = settings::VACUUM_RETENTION_HOURS, default_value_t = clickstream::maintenance::DEFAULT_VACUUM_RETENTION_HOURS)]
    retention_hours: i64,
    /// Comma-separated funnel steps (gold's figures are computed again).
    #[arg(long, env = "GOLD_FUNNEL_STEPS")]
    funnel: Option<String>,
    /// List the erasures recorded in audit/erasures instead.
    #[arg(long, conflicts_with_all = ["identifier", "request_id", "now"])]
    list: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    lake: LakeArgs,
}

#[derive(Args, Debug, Clone)]
struct LakeArgs {
    /// Lake root: a local directory or s3://bucket/prefix (S3 settings from AWS_* variables).
    #[arg(long, env = settings::LAKE_URI, default_value = "lake")]
    lake: String,
}

#[derive(Args, Debug, Clone)]
struct GeneratorArgs {
    /// Random seed; the same seed and start date give the same events.
    #[arg(long, env = "CLICKSTREAM_SEED", default_value_t = 42)]
    seed: u64,
    /// First simulated day (UTC, YYYY-MM-DD); default: `days` days before today.
    #[arg(long, env = "CLICKSTREAM_START")]
    start: Option<chrono::NaiveDate>,
    /// Number of simulated days.
    #[arg(long, env = "CLICKSTREAM_DAYS", default_value_t = 7)]
    days: u32,
    /// Share of records that resend an earlier event.
    #[arg(long, env = "CLICKSTREAM_DUPLICATE_RATE", default_value_t = 0.01)]
    duplicate_rate: f64,
    /// Share of invalid records.
    #[arg(long, env = "CLICKSTREAM_INVALID_RATE", default_value_t = 0.005)]
    invalid_rate: f64,
    /// Share of events arriving one to three days late.
    #[arg(long, env = "CLICKSTREAM_LATE_RATE", default_value_t = 0.01)]
    late_rate: f64,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Number of events to generate.
    #[arg(long, env = "CLICKSTREAM_EVENTS", default_value_t = 100_000)]
    events: usize,
    /// Records per Kafka batch handed to the bronze-writer (AWS allows at most 10,000).
    #[arg(long, env = "CLICKSTREAM_BATCH_SIZE", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
    /// Comma-separated funnel steps.
    #[arg(long, env = settings::FUNNEL_STEPS)]
    funnel: Option<String>,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    lake: LakeArgs,
    #[command(flatten)]
    generator: GeneratorArgs,
}

#[derive(Args, Debug)]
struct GenerateArgs {
    /// Number of records to write (default 10,000); a batch of past days, not live traffic.
    #[arg(long, env = "CLICKSTREAM_EVENTS", conflicts_with = "duration")]
    events: Option<usize>,
    /// Output file (.jsonl, or .jsonl.gz to compress); standard output when neither this nor
    /// --brokers is given.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Produce to Kafka at these bootstrap servers instead (unless --output is given).
    #[arg(long, env = ENV_KAFKA_BROKERS)]
    brokers: Option<String>,
    /// Topic to produce to.
    #[arg(long, env = ENV_KAFKA_TOPIC, default_value = settings::DEFAULT_TOPIC)]
    topic: String,
    /// Records per second to produce: live, the mean (default 100); a batch, the most (0: as
    /// fast as the broker takes them).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Produce for this many seconds (live; or a batch of --rate times this many records).
    #[arg(long)]
    duration: Option<f64>,
    /// Live traffic stamped with the wall clock, until Ctrl-C or --duration: the default when
    /// producing to Kafka without --events.
    #[arg(long, conflicts_with_all = ["batch", "output", "events"])]
    live: bool,
    /// A batch of past days to Kafka, as to a file, instead of live traffic.
    #[arg(long)]
    batch: bool,
    /// Live: traffic follows a daily curve (--rate is its mean; highest at 16:00 UTC).
    #[arg(long)]
    daily_curve: bool,
    /// Live: first produce this many days of history, then go live.
    #[arg(long, default_value_t = 0)]
    backfill_days: u32,
    /// Live: records per day of --backfill-days.
    #[arg(long, default_value_t = 20_000)]
    backfill_per_day: usize,
    #[command(flatten)]
    generator: GeneratorArgs,
}

impl GenerateArgs {
    /// Live traffic: asked for, or producing to Kafka without a number of events or --batch.
    fn is_live(&self) -> bool {
        self.live
            || (self.brokers.is_some()
                && self.output.is_none()
                && self.events.is_none()
                && !self.batch)
    }
}

#[derive(Args, Debug)]
struct IngestArgs {
    /// Files to land (.jsonl, .jsonl.gz, .json).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Comma-separated funnel steps.
    #[arg(long, env = settings::FUNNEL_STEPS)]
    funnel: Option<String>,
    #[command(flatten)]
    lake: LakeArgs,
}

#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: clickstream_allocator::Allocator = clickstream_allocator::Allocator;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    clickstream_allocator::tune();
    let cli = Cli::parse();
    // The bridge is a service: its log is what it does.
    let level = match cli.command {
        Command::Local(_) | Command::Forget(_) => "info",
        _ => "warn",
    };
    clickstream::telemetry::init(level, clickstream::telemetry::LogFormat::Text);
    let result = match cli.command {
        Command::Demo(args) => commands::demo(args).await,
        Command::Generate(args) => commands::generate(args).await,
        Command::Ingest(args) => commands::ingest(args).await,
        Command::Export(args) => commands::export(args).await,
        Command::Report(args) => commands::report(args).await,
        Command::Dashboard(args) => commands::dashboard(args).await,
        Command::Serve(args) => commands::serve(args).await,
        Command::Maintain(args) => commands::maintain(args).await,
        Command::Forget(args) => commands::forget(args).await,
        Command::Status(args) => commands::status(args).await,
        Command::Bench(BenchCommand::TableOpen { commits }) => bench::table_open(commits).await,
        Command::Bench(BenchCommand::Freshness(args)) => commands::freshness(args).await,
        Command::Bench(BenchCommand::Cost(args)) => commands::cost(args).await,
        Command::Bench(BenchCommand::Pipeline {
            events,
            batch_size,
            only,
        }) => bench_stages::pipeline(events, batch_size, only).await,
        Command::Bench(BenchCommand::PipelineRun {
            corpus,
            run,
            batch_size,
        }) => bench_stages::pipeline_run(&corpus, run, batch_size).await,
        Command::Bench(BenchCommand::LandedFiles {
            bomb_gib,
            plain_gib,
        }) => bench_landed::landed_files(bomb_gib, plain_gib).await,
        Command::Bench(BenchCommand::LandedFileRun { file }) => {
            bench_landed::landed_file_run(&file).await
        }
        Command::Bench(BenchCommand::History {
            days,
            events_per_day,
            batches,
            batch_events,
            keep,
            rounds,
        }) => {
            bench_stages::history(bench_stages::HistoryConfig {
                days,
                events_per_day,
                batches,
                batch_events,
                keep,
                rounds: rounds.max(1),
            })
            .await
        }
        Command::Bench(BenchCommand::HistoryBatch {
            batch_events,
            batches,
            first_offset,
            lake,
        }) => match clickstream::Lake::open(&lake.lake) {
            Ok(lake) => {
                bench_stages::history_batch(&lake, batch_events, batches, first_offset).await
            }
            Err(e) => Err(e.into()),
        },
        Command::Local(LocalCommand::Bridge(args)) => commands::bridge(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<commands::Stale>().is_some() => {
            eprintln!("{e}");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {}", error_report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, leaving out a cause whose text its parent already shows
/// (Delta and object store errors repeat their sources in their own messages).
pub(crate) fn error_report(error: &anyhow::Error) -> String {
    let mut report = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if report.contains(&text) {
            continue;
        }
        if !report.is_empty() {
            report.push_str(": ");
        }
        report.push_str(&text);
    }
    use object_store::client::{HttpError, HttpErrorKind};
    // Delta's kernel passes object store errors on as text, so the text is looked at too.
    let no_answer = error.chain().any(|cause| {
        cause.downcast_ref::<HttpError>().is_some_and(|e| {
            matches!(
                e.kind(),
                HttpErrorKind::Timeout | HttpErrorKind::Request | HttpErrorKind::Connect
            )
        })
    }) || report.contains("HTTP error: error sending request");
    if no_answer {
        let seconds = std::env::var(clickstream::settings::LAKE_TIMEOUT_SECONDS)
            .unwrap_or_else(|_| clickstream::lake::DEFAULT_LAKE_TIMEOUT_SECONDS.to_string());
        report.push_str(&format!(
            "\n  the object store did not answer within {seconds} s ({}): it may be down, \
             unreachable or overloaded; nothing was half-done, and running again is safe",
            clickstream::settings::LAKE_TIMEOUT_SECONDS
        ));
    }
    report
}
