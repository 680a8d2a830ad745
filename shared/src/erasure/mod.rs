//! Erasing a person on request (GDPR Art. 17, CCPA): `clickstream forget`, and the forget
//! function that an object under `requests/forget/` triggers.
//!
//! A request names a user_id or an anonymous_id; the erasure expands it to the whole person by
//! the stitching rule (the user and every anonymous id stitched to them), then:
//! 1. records the request in `audit/erasures` (hashes only), from when on silver suppresses the
//!    person's redelivered records;
//! 2. rewrites silver/events, bronze/events and silver/quarantine without the person's rows
//!    ([`crate::lake::rewrite_rows`]: the log names the request, not the rows), and another
//!    person's silver events that carry one of their anonymous ids (a shared device) without
//!    that id;
//! 3. removes them from gold and computes the dates they were on again ([`crate::gold::erase`]),
//!    then the identities and retention, and has the caller rewrite the exports;
//! 4. deletes the landed files that held them once bronze has read those files;
//! 5. removes the replaced files (`now`: at once, with the log files before a new checkpoint;
//!    otherwise maintenance's VACUUM does after its retention), and records the request as
//!    complete.
//!
//! While it runs, the request object and a state object under `requests/forgetting/` hold the
//! identifiers; both go when the request completes. Every step finds what is left to do, so a
//! request run again after a crash, or twice, ends the same.

mod edits;

pub use crate::silver::identity_hash;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use deltalake::datafusion::prelude::{col, lit};
use futures::TryStreamExt as _;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gold::identities::{IDENTITY_INPUT, identity_events, stitch};
use crate::lake::{
    Lake, Rewritten, Table, batch_of, retry_lost_races, rewrite_rows, rows_of, writer_commit,
};
use crate::rows;
use edits::Needles;

/// Where erasure requests are put: `requests/forget/<request id>.json`, holding
/// `{"identifier": "..."}`. On AWS a new object here triggers the forget function.
pub const REQUESTS_PREFIX: &str = "requests/forget/";
/// Where a request under way keeps the person it expanded to (not a trigger prefix).
const STATE_PREFIX: &str = "requests/forgetting/";
/// Passes over the tables at most: the second finds what writers that started before the
/// request was recorded may have added back, and the last must find nothing.
const MAX_PASSES: usize = 4;

/// An erasure request: its id and the identifier it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request's id: letters, digits, `.`, `_` and `-` (1 to 128), not holding the identifier.
    pub id: String,
    /// The user_id or anonymous_id to erase.
    pub identifier: String,
}

/// What a request object holds.
#[derive(Debug, Serialize, Deserialize)]
struct RequestBody {
    identifier: String,
}

impl Request {
    /// A request, checked: an id that names an object and does not hold the identifier (the id
    /// is kept in the audit table and the log), and an identifier of 1 to 1,024 bytes.
    pub fn new(id: &str, identifier: &str) -> Result<Request> {
        let invalid = |reason: &str| Error::Erasure {
            reason: reason.to_string(),
        };
        let id_ok = (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !id_ok {
            return Err(invalid(
                "a request id is 1 to 128 letters, digits, '.', '_' or '-'",
            ));
        }
        if identifier.is_empty() || identifier.len() > 1024 {
            return Err(invalid("the identifier must be 1 to 1024 bytes"));
        }
        if id.contains(identifier) {
            return Err(invalid(
                "the request id must not hold the identifier (the id is kept; the identifier is not)",
            ));
        }
        Ok(Request {
            id: id.to_string(),
            identifier: identifier.to_string(),
        })
    }

    /// The key of the request's object, relative to the lake root.
    pub fn key(&self) -> String {
        format!("{REQUESTS_PREFIX}{}.json", self.id)
    }

    /// Puts the request's object, so that a run that stops midway leaves it to be run again.
    pub async fn put(&self, lake: &Lake) -> Result<()> {
        let body = serde_json::to_vec(&RequestBody {
            identifier: self.identifier.clone(),
        })
        .map_err(|e| Error::Erasure {
            reason: e.to_string(),
        })?;
        lake.store()?
            .put(&Path::from(self.key()), body.into())
            .await?;
        Ok(())
    }

    /// The request in the object at `key` (relative to the lake root): its id is the object's
    /// name without `.json`.
    pub async fn read(lake: &Lake, key: &str) -> Result<Request> {
        let id = key
            .strip_prefix(REQUESTS_PREFIX)
            .and_then(|name| name.strip_suffix(".json"))
            .ok_or_else(|| Error::Erasure {
                reason: format!("{key} is not a request object ({REQUESTS_PREFIX}<id>.json)"),
            })?;
        let bytes = lake.store()?.get(&Path::from(key)).await?.bytes().await?;
        let body: RequestBody = serde_json::from_slice(&bytes).map_err(|e| Error::Erasure {
            reason: format!("{key}: expected {{\"identifier\": \"...\"}}: {e}"),
        })?;
        Request::new(id, &body.identifier)
    }
}

/// The person a request expanded to, kept under [`STATE_PREFIX`] while the request runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Person {
    /// The identifier asked for.
    pub(crate) identifier: String,
    /// Their user_id, when the identifier is one or is stitched to one.
    pub(crate) user_id: Option<String>,
    /// Their anonymous ids: those stitched to the user, or the identifier when it is an
    /// anonymous id stitched to no one.
    pub(crate) anonymous_ids: BTreeSet<String>,
    /// When the request was first taken up (µs since the epoch).
    pub(crate) requested_at: i64,
}

impl Person {
    /// Every identifier of the person: the one asked for, the user_id, the anonymous ids.
    pub(crate) fn identifiers(&self) -> Vec<&str> {
        let mut ids: BTreeSet<&str> = self.anonymous_ids.iter().map(String::as_str).collect();
        ids.extend(self.user_id.as_deref());
        ids.insert(&self.identifier);
        ids.into_iter().collect()
    }

    /// The person `identifier` is, by the stitching rule over silver now, and by gold's
    /// stitching state (which may still hold links of silver rows already erased).
    async fn expand(lake: &Lake, identifier: &str) -> Result<Person> {
        let batches = lake
            .read_table(Table::Silver, &IDENTITY_INPUT, None)
            .await?;
        let events = identity_events(&batches)?;
        let is_user = events.iter().any(|e| e.user_id == Some(identifier));
        // Gold's latest link of each anonymous id, then silver's over it: silver is the rule's
        // source, and gold still knows the ids whose silver rows a stopped run erased.
        let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
        let gold = lake.read_table(Table::AnonymousIds, &[], None).await?;
        for row in rows_of::<rows::AnonymousId>(&gold)? {
            let held = latest.get(&row.anonymous_id).map_or(i64::MIN, |(v, _)| *v);
            if row.silver_version >= held {
                latest.insert(row.anonymous_id, (row.silver_version, row.user_id));
            }
        }
        let mut links: BTreeMap<String, String> = latest
            .into_iter()
            .filter_map(|(anonymous, (_, user))| Some((anonymous, user?)))
            .collect();
        for l in stitch(events) {
            links.insert(l.anonymous_id.to_string(), l.user_id.to_string());
        }
        let user_id = match is_user || links.values().any(|user| user == identifier) {
            true => Some(identifier.to_string()),
            false => links.get(identifier).cloned(),
        };
        let anonymous_ids = match &user_id {
            Some(user) => links
                .into_iter()
                .filter(|(_, linked)| linked == user)
                .map(|(anonymous, _)| anonymous)
                .collect(),
            None => BTreeSet::from([identifier.to_string()]),
        };
        Ok(Person {
            identifier: identifier.to_string(),
            user_id,
            anonymous_ids,
            requested_at: Utc::now().timestamp_micros(),
        })
    }

    /// The hashes of every identifier, space-separated, as `audit/erasures` keeps them.
    fn hashes(&self) -> String {
        let hashes: Vec<String> = self.identifiers().into_iter().map(identity_hash).collect();
        hashes.join(" ")
    }
}

/// How an erasure runs.
#[derive(Debug, Clone)]
pub struct ForgetOptions {
    /// Remove the replaced files at once (VACUUM with no retention, then a checkpoint and the
    /// log files before it). A reader of an older version may then fail and retry.
    pub now: bool,
    /// Maintenance's VACUUM retention (when `now` is not set, the files go after it).
    pub retention: chrono::Duration,
    /// The funnel's steps (gold computes its figures again).
    pub funnel: Vec<String>,
}

/// What an erasure did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ErasureReport {
    /// The request's id.
    pub request_id: String,
    /// The hash of the identifier asked for.
    pub identifier_hash: String,
    /// Identifiers of the person (the user_id and the anonymous ids).
    pub identifiers: usize,
    /// Rows removed per table (by path), over every pass.
    pub rows_removed: BTreeMap<String, usize>,
    /// Other persons' silver events from which one of the person's anonymous ids was cleared.
    pub rows_redacted: usize,
    /// Each table's version after the erasure (by path).
    pub table_versions: BTreeMap<String, i64>,
    /// Landed files deleted because they held the person (bronze had read them).
    pub landed_files_removed: Vec<String>,
    /// Landed files that hold the person but bronze has not read yet: the request completes
    /// when it is run again after bronze has.
    pub landed_files_pending: Vec<String>,
    /// When the request was first taken up.
    pub requested_at: Option<DateTime<Utc>>,
    /// When every table and export was rewritten without the person (none while files are
    /// pending).
    pub completed_at: Option<DateTime<Utc>>,
    /// When no file holding the person is left in the lake: `completed_at` with `now`, else
    /// after maintenance's VACUUM retention.
    pub files_removed_by: Option<DateTime<Utc>>,
    /// True when the request had completed before: nothing was done again.
    pub already_complete: bool,
}

/// Runs the erasure `request` on `lake` (see the module's documentation); `rewrite_exports`
/// writes the exports again from gold once gold is without the person. Idempotent, safe while
/// the stages write, and safe to run again after a crash.
pub async fn forget<F>(
    lake: &Lake,
    request: &Request,
    options: &ForgetOptions,
    rewrite_exports: F,
) -> Result<ErasureReport>
where
    F: AsyncFnOnce(&Lake) -> Result<()>,
{
    lake.check_writable().await?;
    if let Some(done) = audit_row(lake, &request.id).await?
        && done.status == "complete"
    {
        return Ok(report_of(&done, true));
    }
    let person = person_of(lake, request).await?;
    let mut report = ErasureReport {
        request_id: request.id.clone(),
        identifier_hash: identity_hash(&request.identifier),
        identifiers: person.identifiers().len(),
        requested_at: DateTime::from_timestamp_micros(person.requested_at),
        ..ErasureReport::default()
    };
    record(lake, &audit(&person, request, &report, "started")).await?;
    tracing::info!(
        request = request.id,
        "erasure recorded: the person's records are suppressed from now on"
    );

    let quoted = Needles::of(&person, true);
    let plain = Needles::of(&person, false);
    let landed = landed_files_holding(lake, &quoted).await?;
    let identifiers: HashSet<String> = person
        .identifiers()
        .into_iter()
        .map(str::to_string)
        .collect();
    let bronze_files = std::sync::Mutex::new(BTreeSet::new());
    for pass in 1..=MAX_PASSES {
        let mut found = 0;
        let silver = rewrite(lake, Table::Silver, request, |b| edits::silver(b, &person)).await?;
        report.rows_redacted += silver.changed;
        found += count(&mut report, Table::Silver, silver);
        let bronze = rewrite(lake, Table::Bronze, request, |b| {
            edits::bronze(b, &quoted, &bronze_files)
        })
        .await?;
        found += count(&mut report, Table::Bronze, bronze);
        let quarantine = rewrite(lake, Table::Quarantine, request, |b| {
            edits::quarantine(b, &plain)
        })
        .await?;
        found += count(&mut report, Table::Quarantine, quarantine);
        let gold = crate::gold::erase(lake, &identifiers, &options.funnel).await?;
        for (table, removed) in &gold.removed {
            *report.rows_removed.entry(table.clone()).or_default() += removed;
            found += removed;
        }
        report.table_versions.extend(gold.versions);
        tracing::info!(request = request.id, pass, rows = found, "erasure pass");
        if found == 0 {
            break;
        }
        if pass == MAX_PASSES {
            // A writer keeps adding them back: the request is run again later.
            return Err(Error::Contended {
                table: "erasure".into(),
                attempts: MAX_PASSES as u32,
            });
        }
    }
    crate::gold::identities::refresh(lake).await?;
    crate::gold::retention::refresh(lake).await?;
    rewrite_exports(lake).await?;

    let read = bronze_files.into_inner().unwrap_or_default();
    let store = lake.store()?;
    for key in landed {
        let in_bronze = read.contains(&key) || read.contains(&lake.object_key(&key));
        if in_bronze {
            store.delete(&Path::from(key.as_str())).await?;
            report.landed_files_removed.push(key);
        } else {
            report.landed_files_pending.push(key);
        }
    }
    if options.now {
        remove_replaced_files(lake).await?;
    }
    if !report.landed_files_pending.is_empty() {
        tracing::warn!(
            request = request.id,
            files = ?report.landed_files_pending,
            "landed files hold the person but bronze has not read them: run the request again after it has"
        );
        return Ok(report);
    }
    let now = Utc::now();
    report.completed_at = Some(now);
    report.files_removed_by = Some(match options.now {
        true => now,
        false => now + options.retention,
    });
    record(lake, &audit(&person, request, &report, "complete")).await?;
    for key in [state_key(request), request.key()] {
        match store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}

/// Counts a table's rewrite into the report; the rows it found.
fn count(report: &mut ErasureReport, table: Table, done: Rewritten) -> usize {
    *report.rows_removed.entry(table.path().into()).or_default() += done.removed;
    report
        .table_versions
        .insert(table.path().into(), done.version);
    done.removed + done.changed
}

/// [`rewrite_rows`], tried again when it loses a race with another writer.
async fn rewrite(
    lake: &Lake,
    table: Table,
    request: &Request,
    edit: impl Fn(&arrow::array::RecordBatch) -> Result<crate::lake::Edit>,
) -> Result<Rewritten> {
    let edit = &edit;
    let (done, _) = retry_lost_races(table.path(), || {
        rewrite_rows(lake, table, &request.id, edit)
    })
    .await?;
    Ok(done)
}

fn state_key(request: &Request) -> String {
    format!("{STATE_PREFIX}{}.json", request.id)
}

/// The person of `request`: as a run of it before expanded it (the person's rows may be gone
/// from silver since), else expanded now and kept.
async fn person_of(lake: &Lake, request: &Request) -> Result<Person> {
    let store = lake.store()?;
    let key = Path::from(state_key(request));
    match store.get(&key).await {
        Ok(found) => {
            let person: Person =
                serde_json::from_slice(&found.bytes().await?).map_err(|e| Error::Erasure {
                    reason: format!("{key}: {e}"),
                })?;
            if person.identifier == request.identifier {
                return Ok(person);
            }
            Err(Error::Erasure {
                reason: format!("request {} is under way for another identifier", request.id),
            })
        }
        Err(object_store::Error::NotFound { .. }) => {
            let person = Person::expand(lake, &request.identifier).await?;
            let body = serde_json::to_vec(&person).map_err(|e| Error::Erasure {
                reason: e.to_string(),
            })?;
            store.put(&key, body.into()).await?;
            Ok(person)
        }
        Err(e) => Err(e.into()),
    }
}

/// The audit row of `request`, as started or complete.
fn audit(
    person: &Person,
    request: &Request,
    report: &ErasureReport,
    status: &str,
) -> rows::Erasure {
    rows::Erasure {
        request_id: request.id.clone(),
        identifier_hash: identity_hash(&request.identifier),
        suppressed_hashes: person.hashes(),
        status: status.into(),
        requested_at: person.requested_at,
        completed_at: report.completed_at.map(|t| t.timestamp_micros()),
        files_removed_by: report.files_removed_by.map(|t| t.timestamp_micros()),
        rows_removed: serde_json::to_string(&report.rows_removed).unwrap_or_default(),
        table_versions: serde_json::to_string(&report.table_versions).unwrap_or_default(),
    }
}

/// The report a completed request's audit row gives.
fn report_of(row: &rows::Erasure, already_complete: bool) -> ErasureReport {
    ErasureReport {
        request_id: row.request_id.clone(),
        identifier_hash: row.identifier_hash.clone(),
        identifiers: row.suppressed_hashes.split_whitespace().count(),
        rows_removed: serde_json::from_str(&row.rows_removed).unwrap_or_default(),
        table_versions: serde_json::from_str(&row.table_versions).unwrap_or_default(),
        requested_at: DateTime::from_timestamp_micros(row.requested_at),
        completed_at: row.completed_at.and_then(DateTime::from_timestamp_micros),
        files_removed_by: row
            .files_removed_by
            .and_then(DateTime::from_timestamp_micros),
        already_complete,
        ..ErasureReport::default()
    }
}

/// The audit row of request `id`, if any.
async fn audit_row(lake: &Lake, id: &str) -> Result<Option<rows::Erasure>> {
    let batches = lake
        .read_table(Table::Erasures, &[], Some(col("request_id").eq(lit(id))))
        .await?;
    Ok(rows_of::<rows::Erasure>(&batches)?.into_iter().next())
}

/// Every erasure recorded in `audit/erasures`.
pub async fn erasures(lake: &Lake) -> Result<Vec<ErasureReport>> {
    let batches = lake.read_table(Table::Erasures, &[], None).await?;
    let rows = rows_of::<rows::Erasure>(&batches)?;
    Ok(rows
        .iter()
        .map(|r| report_of(r, r.status == "complete"))
        .collect())
}

/// Writes `row` as the one row of its request in `audit/erasures`.
async fn record(lake: &Lake, row: &rows::Erasure) -> Result<()> {
    retry_lost_races(Table::Erasures.path(), || async {
        let table = lake.table(Table::Erasures).await?;
        let written = table
            .write(vec![batch_of(
                &Table::Erasures.schema(),
                std::slice::from_ref(row),
            )?])
            .with_save_mode(deltalake::protocol::SaveMode::Overwrite)
            .with_replace_where(col("request_id").eq(lit(row.request_id.as_str())))
            .with_commit_properties(writer_commit())
            .await
            .map_err(Error::delta(Table::Erasures.path()))?;
        lake.keep(Table::Erasures, &written);
        Ok(())
    })
    .await?;
    Ok(())
}

/// The landed files (keys relative to the lake root) whose records name one of the person's
/// identifiers as a JSON string; gzip files are read decompressed.
async fn landed_files_holding(lake: &Lake, needles: &Needles) -> Result<Vec<String>> {
    let store = lake.store()?;
    let prefix = Path::from(crate::bronze::LANDING_PREFIX.trim_end_matches('/'));
    let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    let mut holding = Vec::new();
    for object in objects {
        let bytes = store.get(&object.location).await?.bytes().await?;
        if holds(&bytes, needles)? {
            holding.push(object.location.to_string());
        }
    }
    Ok(holding)
}

/// True when `bytes` (decompressed first when gzip) hold one of `needles`; read a window at a
/// time, the windows overlapping by the longest needle.
fn holds(bytes: &[u8], needles: &Needles) -> Result<bool> {
    use std::io::Read as _;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(needles.in_bytes(bytes));
    }
    let mut reader = flate2::read::MultiGzDecoder::new(bytes);
    let overlap = needles.longest();
    let mut window = vec![0u8; (1 << 20) + overlap];
    let mut held = 0;
    loop {
        let n = reader.read(&mut window[held..])?;
        if n == 0 {
            return Ok(needles.in_bytes(&window[..held]));
        }
        held += n;
        if held == window.len() {
            if needles.in_bytes(&window) {
                return Ok(true);
            }
            window.copy_within(held - overlap.., 0);
            held = overlap;
        }
    }
}

/// Removes every file the erasure replaced from every table at once (VACUUM with no retention),
/// then writes a checkpoint and removes the log files before it, so that no commit written
/// before the erasure (which may hold statistics of the person's rows, on a table created
/// before those were turned off) remains. A stage's log files are kept back to the version the
/// next stage has read up to, which it still reads.
async fn remove_replaced_files(lake: &Lake) -> Result<()> {
    let silver_read = crate::silver::watermark(lake).await?;
    let gold_read = crate::gold::processed_silver_version(lake)
        .await?
        .unwrap_or(-1);
    for t in Table::ALL {
        let Some(table) = lake.existing_table(t).await? else {
            continue;
        };
        let (table, vacuumed) = table
            .vacuum()
            .with_retention_period(chrono::Duration::zero())
            .with_enforce_retention_duration(false)
            .with_commit_properties(writer_commit())
            .await
            .map_err(Error::delta(t.path()))?;
        deltalake::checkpoints::create_checkpoint(&table, None)
            .await
            .map_err(Error::delta(t.path()))?;
        let version = table.version().unwrap_or_default() as i64;
        let keep = match t {
            Table::Bronze => version.min(silver_read.max(0)),
            Table::Silver => version.min(gold_read.max(0)),
            _ => version,
        };
        let cutoff = Utc::now().timestamp_millis() + 1;
        let logs = deltalake::checkpoints::cleanup_expired_logs_for(
            keep as _,
            table.log_store().as_ref(),
            cutoff,
            None,
        )
        .await
        .map_err(Error::delta(t.path()))?;
        lake.keep(t, &table);
        tracing::info!(
            table = t.path(),
            files = vacuumed.files_deleted.len(),
            logs,
            "removed"
        );
    }
    Ok(())
}

impl crate::telemetry::Measured for ErasureReport {
    fn record(&self) {
        use crate::telemetry::{count, metric};
        count(metric::RECORDS_IN, self.rows_removed.values().sum());
    }
}
