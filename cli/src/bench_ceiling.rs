//! `clickstream bench freshness --find-ceiling`: the highest rate one writer per stage sustains on
//! a running local stack, and the stage that limits it. The rate rises by a step per round until
//! a round does not keep up (an event missing from gold after the drain, or p95 produce-to-gold
//! over the limit). Each round, every stage's load comes from its log's EMF lines: its busy time
//! (the sum of its handlers' durations) over the round's wall time, and the records it took in.
//! A stage busy all the time is the one the others wait for; records over busy seconds is what
//! that stage can take on its own (its ceiling). Each round's events are of a day of their own
//! (yesterday, then the day before, ...), and a round ends when the stages are idle again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clickstream::lake::Lake;
use clickstream::telemetry::{emf, metric};

use crate::bench::{FreshnessConfig, through_gold};
use crate::bench_cost::{lines_in, new_lines};

/// The stages every event passes through, in order (one writer each on the local stack).
pub const STREAM_STAGES: [&str; 3] = ["bronze-writer", "silver-transformer", "gold-transformer"];

/// What `--find-ceiling` runs.
pub struct CeilingConfig {
    /// The first round's rate, duration and drain; later rounds keep the duration and drain.
    pub first: FreshnessConfig,
    /// Events/s added per round.
    pub step: f64,
    /// The round's rate is the last when it is at or above this.
    pub max_rate: f64,
    /// A round keeps up when every event is in gold and the p95 produce-to-gold is under this.
    pub max_p95: Duration,
    /// The stack's logs, where the functions write their metrics.
    pub logs: PathBuf,
}

/// One stage's load over a round.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StageLoad {
    pub invocations: u64,
    /// The sum of its handlers' durations.
    pub busy: Duration,
    /// Records it took in (its `RecordsIn`).
    pub records: f64,
}

impl StageLoad {
    /// The stage's load in the EMF lines `written` by it (its log's lines of the round).
    pub fn of(stage: &str, written: &str) -> StageLoad {
        let sums = emf::read(written);
        let Some(sums) = sums.get(stage) else {
            return StageLoad::default();
        };
        let get = |name: &str| sums.get(name);
        StageLoad {
            invocations: get(metric::HANDLER_DURATION).map_or(0, |d| d.samples),
            busy: Duration::from_secs_f64(
                get(metric::HANDLER_DURATION).map_or(0.0, |d| d.sum) / 1e3,
            ),
            records: get(metric::RECORDS_IN).map_or(0.0, |r| r.sum),
        }
    }

    /// The share of `wall` the stage was running.
    pub fn busy_share(&self, wall: Duration) -> f64 {
        self.busy.as_secs_f64() / wall.as_secs_f64().max(1e-9)
    }

    /// Records per busy second: what the stage takes on its own at this round's batch sizes.
    pub fn records_per_busy_second(&self) -> Option<f64> {
        (self.busy > Duration::ZERO).then(|| self.records / self.busy.as_secs_f64())
    }
}

/// One round: its rate, what happened to its events, and each stage's load.
struct Round {
    rate: f64,
    produced_rate: f64,
    events: usize,
    in_gold: usize,
    p50: Option<Duration>,
    p95: Option<Duration>,
    wall: Duration,
    stages: Vec<(&'static str, StageLoad)>,
}

impl Round {
    fn kept_up(&self, max_p95: Duration) -> bool {
        self.in_gold >= self.events && self.p95.is_some_and(|p| p < max_p95)
    }

    /// The stage busy for the largest share of the round.
    fn busiest(&self) -> Option<&(&'static str, StageLoad)> {
        self.stages.iter().max_by(|a, b| {
            a.1.busy_share(self.wall)
                .total_cmp(&b.1.busy_share(self.wall))
        })
    }

    fn print(&self, max_p95: Duration) {
        let secs =
            |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1}s", d.as_secs_f64()));
        println!(
            "round at {:.0} events/s (produced at {:.0}/s): {} of {} in gold, p50 {} p95 {}, {:.0}s: {}",
            self.rate,
            self.produced_rate,
            self.in_gold,
            self.events,
            secs(self.p50),
            secs(self.p95),
            self.wall.as_secs_f64(),
            if self.kept_up(max_p95) {
                "kept up"
            } else {
                "did NOT keep up"
            }
        );
        for (stage, load) in &self.stages {
            println!(
                "  {stage:<20} {:>5} invocations  busy {:>5.1}s ({:>3.0}% of the round)  {:>9.0} records  {}",
                load.invocations,
                load.busy.as_secs_f64(),
                load.busy_share(self.wall) * 100.0,
                load.records,
                load.records_per_busy_second()
                    .map_or("-".into(), |r| format!("{r:.0} records per busy second")),
            );
        }
    }
}

/// How long a round waits, after its events reached gold or its drain ended, for the stages'
/// invocations in flight to finish (their metrics are written when they do).
const IDLE_WAIT: Duration = Duration::from_secs(600);

/// Invocations the lines `written` by a stage started and have not finished or failed yet.
fn in_flight(written: &str) -> usize {
    let count = |what: &str| written.lines().filter(|l| l.contains(what)).count();
    count("\"invocation started\"")
        .saturating_sub(count("\"invocation finished\"") + count("\"invocation failed"))
}

/// Waits up to `limit` until no stream stage has an invocation in flight since the round began
/// (`before`: each stage's log lines then); says so when the limit passes.
async fn wait_until_idle(logs: &std::path::Path, before: &[usize], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let busy: Vec<&str> = STREAM_STAGES
            .iter()
            .zip(before)
            .filter(|(stage, skip)| in_flight(&new_lines(logs, stage, **skip)) > 0)
            .map(|(stage, _)| *stage)
            .collect();
        if busy.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            println!("  still running after {limit:?}: {busy:?} (their load is not counted)");
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs one round at `workload.rate`; it ends once every event is in gold (or the drain has
/// passed) and the stages' invocations in flight have finished.
async fn round(lake: &Lake, workload: &FreshnessConfig, logs: &std::path::Path) -> Result<Round> {
    let before: Vec<usize> = STREAM_STAGES
        .iter()
        .map(|s| lines_in(&logs.join(format!("{s}.log"))))
        .collect();
    let started = Instant::now();
    let (produced, latencies_ms) = through_gold(lake, workload).await?;
    wait_until_idle(logs, &before, IDLE_WAIT).await;
    let wall = started.elapsed();
    let events = (workload.rate * workload.duration.as_secs_f64()).round() as usize;
    let pct = |p: f64| {
        crate::bench::nearest_rank(&latencies_ms, p)
            .map(|ms| Duration::from_millis(ms.max(0) as u64))
    };
    let stages = STREAM_STAGES
        .iter()
        .zip(before)
        .map(|(stage, skip)| (*stage, StageLoad::of(stage, &new_lines(logs, stage, skip))))
        .collect();
    Ok(Round {
        rate: workload.rate,
        produced_rate: produced.acknowledged as f64 / produced.elapsed.as_secs_f64().max(1e-9),
        events,
        in_gold: latencies_ms.len(),
        p50: pct(0.50),
        p95: pct(0.95),
        wall,
        stages,
    })
}

/// Raises the rate round by round until the stack does not keep up, then prints the highest rate
/// that kept up, the stage that limited the next, and each stage's ceiling from the last round.
pub async fn find_ceiling(lake: &Lake, config: CeilingConfig) -> Result<()> {
    anyhow::ensure!(
        config.step > 0.0,
        "--step must be positive (events/s added per round)"
    );
    let missing: Vec<_> = STREAM_STAGES
        .iter()
        .filter(|s| !config.logs.join(format!("{s}.log")).exists())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "no log of {missing:?} in {}: pass the running stack's logs (--logs)",
        config.logs.display()
    );
    println!(
        "ceiling: from {:.0} events/s, +{:.0} per round of {:.0}s, until a round misses an event \
         or its p95 is {:.0}s or more",
        config.first.rate,
        config.step,
        config.first.duration.as_secs_f64(),
        config.max_p95.as_secs_f64()
    );
    let mut highest: Option<f64> = None;
    let mut rate = config.first.rate;
    let mut days_ago = config.first.days_ago;
    let last = loop {
        // Each round's events are of a day of their own, so that gold's cost per run, which
        // follows the events of the dates a run touches, is not raised by the earlier rounds.
        let workload = FreshnessConfig {
            rate,
            brokers: config.first.brokers.clone(),
            topic: config.first.topic.clone(),
            duration: config.first.duration,
            drain: config.first.drain,
            days_ago,
        };
        days_ago += 1;
        let round = round(lake, &workload, &config.logs).await?;
        round.print(config.max_p95);
        if !round.kept_up(config.max_p95) {
            break round;
        }
        highest = Some(rate);
        if rate >= config.max_rate {
            break round;
        }
        rate = (rate + config.step).min(config.max_rate);
    };
    match highest {
        Some(rate) => println!("\nhighest rate kept up: {rate:.0} events/s"),
        None => println!(
            "\nhighest rate kept up: none; the first round ({:.0} events/s) did not",
            config.first.rate
        ),
    }
    if let Some((stage, load)) = last.busiest() {
        let limit = if last.kept_up(config.max_p95) {
            format!(
                "--max-rate {:.0} reached; the busiest stage",
                config.max_rate
            )
        } else if last.produced_rate < 0.95 * last.rate {
            "the producer did not reach the rate (this machine's broker or this process); the busiest stage".into()
        } else {
            format!("at {:.0} events/s the limiting stage", last.rate)
        };
        println!(
            "{limit}: {stage}, busy {:.0}% of the round",
            load.busy_share(last.wall) * 100.0
        );
    }
    println!("each stage's ceiling (records per busy second, at the last round's batch sizes):");
    for (stage, load) in &last.stages {
        if let Some(r) = load.records_per_busy_second() {
            println!("  {stage:<20} {r:>9.0} events/s");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emf_line(stage: &str, name: &str, value: serde_json::Value) -> String {
        serde_json::json!({
            "_aws": {"CloudWatchMetrics": [{"Namespace": "Clickstream", "Dimensions": [["Stage"]],
                "Metrics": [{"Name": name}]}]},
            "Stage": stage,
            name: value,
        })
        .to_string()
    }

    #[test]
    fn a_stage_load_sums_its_handlers_and_records_and_skips_other_lines() {
        let log = [
            emf_line(
                "silver-transformer",
                metric::HANDLER_DURATION,
                serde_json::json!([400.0]),
            ),
            "{\"level\":\"INFO\",\"fields\":{\"message\":\"invocation finished\"}}".to_string(),
            emf_line(
                "silver-transformer",
                metric::HANDLER_DURATION,
                serde_json::json!([600.0]),
            ),
            emf_line("silver-transformer", metric::RECORDS_IN, 3000.into()),
            emf_line("gold-transformer", metric::RECORDS_IN, 99.into()),
        ]
        .join("\n");
        let load = StageLoad::of("silver-transformer", &log);
        assert_eq!(load.invocations, 2);
        assert_eq!(load.busy, Duration::from_secs(1));
        assert_eq!(load.records, 3000.0);
        assert_eq!(load.records_per_busy_second(), Some(3000.0));
        assert_eq!(load.busy_share(Duration::from_secs(4)), 0.25);
        assert_eq!(StageLoad::of("bronze-writer", &log), StageLoad::default());
        assert_eq!(StageLoad::default().records_per_busy_second(), None);
    }

    #[test]
    fn invocations_in_flight_are_those_started_and_not_ended() {
        let line = |message: &str| format!("{{\"fields\":{{\"message\":\"{message}\"}}}}");
        let log = [
            line("invocation started"),
            line("invocation finished"),
            line("invocation started"),
            line("invocation failed: the store did not answer"),
            line("invocation started"),
        ]
        .join("\n");
        assert_eq!(in_flight(&log), 1);
        assert_eq!(
            in_flight(&log.lines().take(4).collect::<Vec<_>>().join("\n")),
            0
        );
    }

    #[test]
    fn a_round_keeps_up_with_every_event_in_gold_under_the_p95_limit() {
        let load = |busy: u64| StageLoad {
            busy: Duration::from_secs(busy),
            ..StageLoad::default()
        };
        let round = Round {
            rate: 1000.0,
            produced_rate: 1000.0,
            events: 10,
            in_gold: 10,
            p50: Some(Duration::from_secs(1)),
            p95: Some(Duration::from_secs(3)),
            wall: Duration::from_secs(20),
            stages: vec![("bronze-writer", load(5)), ("gold-transformer", load(19))],
        };
        assert!(round.kept_up(Duration::from_secs(10)));
        assert!(!round.kept_up(Duration::from_secs(3)));
        assert_eq!(round.busiest().unwrap().0, "gold-transformer");
        let short = Round {
            in_gold: 9,
            ..round
        };
        assert!(!short.kept_up(Duration::from_secs(10)));
    }
}
