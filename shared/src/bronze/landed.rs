//! Bronze from landed files: each file read as a stream twice (its limits checked, then its
//! records written a chunk at a time), once per content, and a file that cannot be read recorded
//! in `bronze/failed_files`.

use aws_lambda_events::event::s3::S3Event;
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use object_store::ObjectStoreExt;
use serde_json::json;

use super::{
    BronzeOutcome, LANDING_PREFIX, LandedLimits, LandedReader, Pass, RawRecord, RecordChunk,
    Unreadable, file_format, to_batch,
};
use crate::error::{Error, Result, TriggerError};
use crate::lake::{Lake, Table, batch_of, retry_lost_races};
use crate::rows;
use crate::trigger;

/// The `txn` app id of a landed file: its key and a hash of its stored bytes (see
/// [`LandedHash`]), so the same content under the same key is written once however often it is
/// landed or notified (an S3 e_tag would not do: a directory's changes with every copy).
pub fn landed_file_id(key: &str, stored: &[u8]) -> String {
    let mut hash = LandedHash::new(key);
    hash.update(stored);
    hash.file_id()
}

/// A landed file's [`landed_file_id`], computed as its bytes stream by.
pub struct LandedHash {
    key: String,
    hasher: xxhash_rust::xxh3::Xxh3,
}

impl LandedHash {
    /// The hash of nothing yet, for the file at `key`.
    pub fn new(key: &str) -> LandedHash {
        LandedHash {
            key: key.to_string(),
            hasher: xxhash_rust::xxh3::Xxh3::new(),
        }
    }

    /// Adds the next stored bytes.
    pub fn update(&mut self, stored: &[u8]) {
        self.hasher.update(stored);
    }

    /// The file's `txn` app id.
    pub fn file_id(&self) -> String {
        format!("landing:{}:{:032x}", self.key, self.hasher.digest128())
    }
}

/// Stored bytes of a landed file up to which bronze keeps them in memory between its two passes;
/// a larger file is read from the store twice.
const KEPT_STORED_BYTES: u64 = 64 << 20;

/// Appends the records of files landed under `landing/` named by an S3 notification, in chunks
/// recorded under [`landed_file_id`], so a redelivered notification or a re-landed copy adds
/// nothing. Each file is read as a stream twice: once to check `limits` (and hash it), then to
/// write it chunk by chunk, so memory follows a chunk, not the file, and a file past a limit is
/// recorded in `bronze/failed_files` before any of it is written. `on_commit` is called with
/// each bronze version as soon as it is committed (the embedded pipeline hands it to silver at
/// once, as S3 notifies each commit file).
pub async fn ingest_landed(
    lake: &Lake,
    event: &S3Event,
    limits: &LandedLimits,
    on_commit: &(dyn Fn(i64) + Send + Sync),
) -> Result<Vec<BronzeOutcome>> {
    let mut outcomes = Vec::new();
    for object in trigger::objects(event)? {
        let Some(key) = lake
            .relative_key(&object.key)
            .filter(|k| k.starts_with(LANDING_PREFIX))
        else {
            return Err(TriggerError::ForeignObject {
                key: object.key,
                expected: format!("under {}{LANDING_PREFIX}", lake.key_prefix()),
            }
            .into());
        };
        outcomes.extend(ingest_landed_file(lake, key, limits, on_commit).await?);
    }
    Ok(outcomes)
}

/// Ingests one landed file (see [`ingest_landed`]).
async fn ingest_landed_file(
    lake: &Lake,
    key: &str,
    limits: &LandedLimits,
    on_commit: &(dyn Fn(i64) + Send + Sync),
) -> Result<Vec<BronzeOutcome>> {
    let unreadable = |reason: String, file_id: String, size: u64| async move {
        Ok(vec![
            record_failed_file(lake, key, &file_id, size, &reason).await?,
        ])
    };
    // The key as S3 has it: `Path::from` would percent-encode `%`, `#`, `[`, `~` and the like.
    let path = match object_store::path::Path::parse(key) {
        Ok(path) => path,
        Err(e) => {
            let reason = format!("the object store cannot address this key: {e}");
            return unreadable(reason, landed_file_id(key, &[]), 0).await;
        }
    };
    if let Err(Unreadable { reason, .. }) = file_format(key) {
        return unreadable(reason, landed_file_id(key, &[]), 0).await;
    }
    let store = lake.store()?;
    let object = match store.get(&path).await {
        Ok(object) => object,
        Err(object_store::Error::NotFound { .. }) => {
            let reason = "not found: deleted before it was read".to_string();
            return unreadable(reason, landed_file_id(key, &[]), 0).await;
        }
        Err(e) => return Err(e.into()),
    };
    let (size, e_tag) = (object.meta.size, object.meta.e_tag.clone());

    // First pass: the limits, and the content's hash.
    let mut hash = LandedHash::new(key);
    let mut check = LandedReader::new(key, limits, Pass::Check)?;
    let mut kept = (size <= KEPT_STORED_BYTES).then(|| Vec::with_capacity(size as usize));
    let mut refused = None;
    let mut stream = crate::lake::object_bytes(object);
    while let Some(stored) = stream.try_next().await? {
        hash.update(&stored);
        if let Some(kept) = &mut kept {
            kept.extend_from_slice(&stored);
        }
        let mut rest = &stored[..];
        while refused.is_none() && !rest.is_empty() {
            match check.push(rest) {
                Ok(taken) => rest = &rest[taken..],
                Err(e) => refused = Some(e),
            }
        }
    }
    let checked = match refused {
        Some(e) => Err(e),
        None => check.finish().map(drop),
    };
    if let Err(Unreadable { reason, .. }) = checked {
        return unreadable(reason, hash.file_id(), size).await;
    }

    // Second pass: the records, a chunk at a time.
    let file_id = hash.file_id();
    let mut stored: futures::stream::BoxStream<'_, Result<bytes::Bytes>> = match kept {
        Some(kept) => Box::pin(futures::stream::once(async { Ok(kept.into()) })),
        None => {
            let options = object_store::GetOptions {
                if_match: e_tag,
                ..Default::default()
            };
            let object = store.get_opts(&path, options).await?;
            crate::lake::object_bytes(object)
        }
    };
    let mut split = LandedReader::new(key, limits, Pass::Split)?;
    let mut writer = LandedChunkWriter {
        lake,
        key,
        file_id: &file_id,
        ingest_time: Utc::now(),
        outcomes: Vec::new(),
        on_commit,
    };
    while let Some(bytes) = stored.try_next().await? {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            rest = &rest[split.push(rest)?..];
            while let Some(chunk) = split.next_chunk() {
                writer.append(chunk).await?;
            }
        }
    }
    let (last, warning) = match split.finish() {
        Ok(last) => last,
        // Only a `.json` file gets here (it is split once whole), before any chunk is written.
        Err(Unreadable { reason, .. }) if writer.outcomes.is_empty() => {
            return unreadable(reason, file_id, size).await;
        }
        Err(e) => return Err(e.into()),
    };
    for chunk in last {
        writer.append(chunk).await?;
    }
    let mut outcomes = writer.outcomes;
    if outcomes.is_empty() {
        outcomes.push(BronzeOutcome::default());
    }
    if let (Some(warning), Some(last)) = (warning, outcomes.last_mut()) {
        tracing::warn!(file = key, "{warning}");
        last.warning = Some(format!("{key}: {warning}"));
    }
    Ok(outcomes)
}

/// Appends a landed file's chunks in order, the chunk's index as its `txn` version.
struct LandedChunkWriter<'a> {
    lake: &'a Lake,
    key: &'a str,
    file_id: &'a str,
    ingest_time: DateTime<Utc>,
    outcomes: Vec<BronzeOutcome>,
    on_commit: &'a (dyn Fn(i64) + Send + Sync),
}

impl LandedChunkWriter<'_> {
    async fn append(&mut self, chunk: RecordChunk) -> Result<()> {
        let records: Vec<RawRecord> = chunk
            .iter()
            .enumerate()
            .map(|(i, payload)| {
                let line = chunk.first_record as i64 + i as i64 + 1;
                RawRecord {
                    payload,
                    source: format!("file:{}#{line}", self.key),
                    topic: None,
                    partition: None,
                    offset: None,
                    file_key: Some(self.key.to_string()),
                    line: Some(line),
                    kafka_timestamp: None,
                }
            })
            .collect();
        let landed = LandedChunk {
            key: self.key,
            file_id: self.file_id,
            chunk: self.outcomes.len() as i64,
            records,
            ingest_time: self.ingest_time,
        };
        let (outcome, _) = retry_lost_races(Table::Bronze.path(), || {
            append_landed_chunk(self.lake, &landed)
        })
        .await?;
        if let Some(version) = outcome.version {
            (self.on_commit)(version);
        }
        self.outcomes.push(outcome);
        Ok(())
    }
}

/// One chunk of a landed file's records.
struct LandedChunk<'a> {
    key: &'a str,
    /// The file's [`landed_file_id`], its `txn` app id.
    file_id: &'a str,
    /// The chunk's index, its `txn` version.
    chunk: i64,
    records: Vec<RawRecord<'a>>,
    ingest_time: DateTime<Utc>,
}

/// Appends a chunk of a landed file unless the file's `txn` says it is in bronze already.
async fn append_landed_chunk(lake: &Lake, landed: &LandedChunk<'_>) -> Result<BronzeOutcome> {
    let mut appender = lake.appender(Table::Bronze).await?;
    let received = landed.records.len();
    let done = appender.txn_version(landed.file_id).await?;
    if done.is_some_and(|v| landed.chunk <= v) {
        return Ok(BronzeOutcome {
            received,
            already_written: received,
            ..Default::default()
        });
    }
    let batch = to_batch(&landed.records, landed.ingest_time)?;
    let info = json!({
        "source": "landing", "file": landed.key, "chunk": landed.chunk, "records": received
    });
    let txns = [(landed.file_id.to_string(), landed.chunk)];
    let version = appender.append(lake, batch, &txns, info).await?;
    Ok(BronzeOutcome {
        received,
        written: received,
        version: Some(version),
        ..Default::default()
    })
}

/// Records a landed file that cannot be read in `bronze/failed_files`, under its
/// [`landed_file_id`] as the commit's `txn`, so the same content is recorded once however often
/// it is notified. A retry could not read it either, so the notification succeeds.
async fn record_failed_file(
    lake: &Lake,
    key: &str,
    file_id: &str,
    size: u64,
    reason: &str,
) -> Result<BronzeOutcome> {
    tracing::warn!(
        file = key,
        "cannot be read ({reason}): recorded in {}",
        Table::FailedFiles.path()
    );
    retry_lost_races(Table::FailedFiles.path(), || async {
        let mut appender = lake.appender(Table::FailedFiles).await?;
        if appender.txn_version(file_id).await?.is_none() {
            let row = rows::FailedFile {
                file_key: key,
                file_id,
                size_bytes: size as i64,
                reason,
                failed_at: Utc::now().timestamp_micros(),
            };
            let batch = batch_of(&Table::FailedFiles.schema(), &[row])?;
            let info = json!({ "source": "landing", "file": key, "unreadable": reason });
            let txns = [(file_id.to_string(), 0)];
            appender.append(lake, batch, &txns, info).await?;
        }
        Ok(())
    })
    .await?;
    Ok(BronzeOutcome {
        unreadable: Some(format!("{key}: {reason}")),
        ..Default::default()
    })
}

/// Copies a local file under `landing/` (keeping its name, streaming it: a file of any size fits)
/// and returns the S3 notification for it, as S3 would send it to the bronze-writer.
pub async fn land_file(lake: &Lake, file: &std::path::Path) -> Result<S3Event> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::LandedFile {
            key: file.display().to_string(),
            reason: "no file name".into(),
        })?;
    let key = format!("{LANDING_PREFIX}{name}");
    file_format(&key)?;
    let path = object_store::path::Path::parse(&key).map_err(|e| Error::LandedFile {
        key: key.clone(),
        reason: format!("the object store cannot address this name: {e}"),
    })?;
    let store = lake.store()?;
    let mut upload = object_store::buffered::BufWriter::new(store.clone(), path.clone());
    // Large reads: tokio reads a file on a blocking thread per read.
    let mut source =
        tokio::io::BufReader::with_capacity(2 << 20, tokio::fs::File::open(file).await?);
    tokio::io::copy_buf(&mut source, &mut upload).await?;
    tokio::io::AsyncWriteExt::shutdown(&mut upload).await?;
    let landed = store.head(&path).await?;
    let etag = landed.e_tag.unwrap_or_else(|| format!("{:x}", landed.size));
    Ok(trigger::s3_put_event(
        lake.bucket(),
        &lake.object_key(&key),
        landed.size,
        &etag,
        Utc::now(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landed_file_id_follows_key_and_content() {
        let id = landed_file_id("landing/a.jsonl", b"{}\n");
        assert_eq!(id, landed_file_id("landing/a.jsonl", b"{}\n"));
        assert_ne!(id, landed_file_id("landing/a.jsonl", b"{} \n"));
        assert_ne!(id, landed_file_id("landing/b.jsonl", b"{}\n"));
    }
}
