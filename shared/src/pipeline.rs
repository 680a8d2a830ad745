//! Embedded mode: the whole pipeline in one process. Each commit triggers the next stage the way
//! S3 would: the notification for the new commit file is built and handed to the next handler.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_lambda_events::event::s3::S3Event;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::bronze::BronzeOptions;
use crate::error::{Error, Result};
use crate::functions::{self, BronzeTrigger};
use crate::lake::{Lake, Table};

/// Counts over a pipeline run. `received = valid + quarantined + duplicates + suppressed` once
/// every bronze
/// record has been through silver.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Totals {
    /// Records handed to the bronze-writer.
    pub received: usize,
    /// Records appended to bronze.
    pub bronze_written: usize,
    /// Records bronze skipped as already written (redeliveries).
    pub bronze_already_written: usize,
    /// Bronze commits written.
    pub bronze_commits: usize,
    /// The highest bronze version this run wrote.
    pub bronze_last_version: Option<i64>,
    /// Bronze rows read by silver.
    pub silver_input: usize,
    /// Records silver found valid.
    pub valid: usize,
    /// Records silver quarantined.
    pub quarantined: usize,
    /// Records silver dropped as duplicates.
    pub duplicates: usize,
    /// Records of erased persons silver dropped (see [`crate::erasure`]).
    pub suppressed: usize,
    /// Quarantined records by reason.
    pub quarantined_by_reason: BTreeMap<String, usize>,
    /// Silver commits written.
    pub silver_commits: usize,
    /// Gold invocations.
    pub gold_invocations: usize,
    /// Gold invocations that found gold already up to date.
    pub gold_up_to_date: usize,
    /// Seconds spent inside bronze's handler (the stages run concurrently).
    pub bronze_seconds: f64,
    /// Seconds spent inside silver's handler.
    pub silver_seconds: f64,
    /// Seconds spent inside gold's handler.
    pub gold_seconds: f64,
    /// What bronze found odd about the input (see [`crate::bronze::BronzeOutcome::warning`]).
    pub warnings: Vec<String>,
    /// Landed files that could not be read, with why (recorded in `bronze/failed_files`).
    pub unreadable_files: Vec<String>,
}

/// Live counters for progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Records written to bronze so far.
    pub bronze_records: AtomicUsize,
    /// Bronze records silver has processed so far.
    pub silver_records: AtomicUsize,
    /// Gold invocations so far.
    pub gold_invocations: AtomicUsize,
}

/// A running embedded pipeline: feed it triggers, then [`Pipeline::finish`].
pub struct Pipeline {
    lake: Lake,
    bronze_options: BronzeOptions,
    totals: Arc<Mutex<Totals>>,
    progress: Arc<Progress>,
    to_silver: mpsc::UnboundedSender<S3Event>,
    silver: JoinHandle<Result<()>>,
    gold: JoinHandle<Result<()>>,
}

fn lock(totals: &Mutex<Totals>) -> std::sync::MutexGuard<'_, Totals> {
    totals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pipeline {
    /// Starts the silver and gold stages, waiting for commit notifications.
    pub fn start(lake: Lake, funnel: Vec<String>) -> Pipeline {
        let totals = Arc::new(Mutex::new(Totals::default()));
        let progress = Arc::new(Progress::default());
        let (to_silver, mut silver_rx) = mpsc::unbounded_channel::<S3Event>();
        let (to_gold, mut gold_rx) = mpsc::unbounded_channel::<S3Event>();

        let (l, t, p) = (lake.clone(), totals.clone(), progress.clone());
        let silver = tokio::spawn(async move {
            while let Some(mut event) = silver_rx.recv().await {
                // Notifications that queued up meanwhile are covered by one catch-up.
                while let Ok(newer) = silver_rx.try_recv() {
                    event = newer;
                }
                let started = Instant::now();
                let outcomes = functions::silver_transformer(&l, &event).await?;
                let mut t = lock(&t);
                t.silver_seconds += started.elapsed().as_secs_f64();
                for o in outcomes {
                    t.silver_input += o.input;
                    t.valid += o.valid;
                    t.quarantined += o.quarantined;
                    t.duplicates += o.duplicates;
                    t.suppressed += o.suppressed;
                    for (reason, n) in &o.quarantined_by_reason {
                        *t.quarantined_by_reason.entry(reason.clone()).or_default() += n;
                    }
                    p.silver_records.fetch_add(o.input, Ordering::Relaxed);
                    if let Some(v) = o.silver_version {
                        t.silver_commits += 1;
                        let _ = to_gold.send(functions::commit_event(&l, Table::Silver, v));
                    }
                }
            }
            Ok(())
        });
        let (l, t, p) = (lake.clone(), totals.clone(), progress.clone());
        let gold = tokio::spawn(async move {
            while let Some(mut event) = gold_rx.recv().await {
                while let Ok(newer) = gold_rx.try_recv() {
                    event = newer;
                }
                let started = Instant::now();
                let outcomes = functions::gold_transformer(&l, &event, &funnel).await?;
                let mut t = lock(&t);
                t.gold_seconds += started.elapsed().as_secs_f64();
                for o in outcomes {
                    t.gold_invocations += 1;
                    t.gold_up_to_date += o.already_processed as usize;
                    p.gold_invocations.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        });
        Pipeline {
            lake,
            bronze_options: BronzeOptions::default(),
            totals,
            progress,
            to_silver,
            silver,
            gold,
        }
    }

    /// The pipeline with bronze-writer's `options` instead of the defaults.
    pub fn with_bronze_options(mut self, options: BronzeOptions) -> Pipeline {
        self.bronze_options = options;
        self
    }

    /// The lake this pipeline writes.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Live counters.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Runs the bronze-writer on a trigger and notifies silver of each commit as it is made.
    pub async fn bronze(&self, trigger: &BronzeTrigger) -> Result<()> {
        let started = Instant::now();
        let to_silver = |version| {
            // Silver stops only after the pipeline's sender is dropped in `finish`.
            let _ =
                self.to_silver
                    .send(functions::commit_event(&self.lake, Table::Bronze, version));
        };
        let outcomes = functions::bronze_writer_notifying(
            &self.lake,
            trigger,
            &self.bronze_options,
            &to_silver,
        )
        .await?;
        let mut t = lock(&self.totals);
        t.bronze_seconds += started.elapsed().as_secs_f64();
        for o in outcomes {
            t.received += o.received;
            t.bronze_written += o.written;
            t.bronze_already_written += o.already_written;
            t.warnings.extend(o.warning);
            t.unreadable_files.extend(o.unreadable);
            self.progress
                .bronze_records
                .fetch_add(o.received, Ordering::Relaxed);
            if let Some(v) = o.version {
                t.bronze_commits += 1;
                t.bronze_last_version = t.bronze_last_version.max(Some(v));
            }
        }
        if self.silver.is_finished() {
            return Err(Error::Embedded {
                stage: "silver",
                cause: None,
            });
        }
        Ok(())
    }

    /// Waits until silver and gold have processed every commit, and returns the counts.
    pub async fn finish(self) -> Result<Totals> {
        drop(self.to_silver);
        let joined = |stage, r: std::result::Result<Result<()>, tokio::task::JoinError>| {
            r.map_err(|e| Error::Embedded {
                stage,
                cause: Some(e.to_string()),
            })?
        };
        joined("silver", self.silver.await)?;
        joined("gold", self.gold.await)?;
        Ok(lock(&self.totals).clone())
    }
}
