//! Hashes of identifiers, and the identifiers silver suppresses: every identifier of every
//! person an erasure request named ([`crate::erasure`]), as `audit/erasures` holds their hashes.

use std::collections::HashSet;
use std::sync::Arc;

use sha2::Digest as _;

use crate::error::Result;
use crate::lake::{Lake, Table, rows_of};
use crate::rows;

/// Prefix hashed before an identifier, so that its hash is this project's and no other table's.
const HASH_DOMAIN: &[u8] = b"clickstream erasure\n";

/// The SHA-256 of an identifier (in this project's domain), as bytes.
fn digest(identifier: &str) -> [u8; 32] {
    let mut hasher = sha2::Sha256::new();
    hasher.update(HASH_DOMAIN);
    hasher.update(identifier.as_bytes());
    hasher.finalize().into()
}

/// The hash `audit/erasures` records of an identifier: SHA-256, in hex. It tells a later
/// request for the same identifier, and lets silver recognise the person's redelivered records,
/// without keeping the identifier; an identifier that can be guessed (an email address) can be
/// confirmed by hashing the guess, as with any unkeyed hash.
pub fn identity_hash(identifier: &str) -> String {
    digest(identifier)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn from_hex(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The identifiers whose records silver drops (counting them as suppressed): those of every
/// erasure request, started or complete.
#[derive(Debug, Default)]
pub struct Suppressed {
    digests: HashSet<[u8; 32]>,
    /// The version of `audit/erasures` read (none before the first erasure).
    version: Option<i64>,
}

impl Suppressed {
    /// The suppressed identifiers of `rows` (of `audit/erasures`).
    fn of(rows: &[rows::Erasure], version: Option<i64>) -> Suppressed {
        let digests = rows
            .iter()
            .flat_map(|r| r.suppressed_hashes.split_whitespace())
            .filter_map(from_hex)
            .collect();
        Suppressed { digests, version }
    }

    /// The version of `audit/erasures` these were read at: a writer that finds another before
    /// its commit lost a race with an erasure that began meanwhile, and reads again.
    pub fn version(&self) -> Option<i64> {
        self.version
    }

    /// True when no identifier is suppressed (then nothing is hashed).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// True when a record with these identifiers is a suppressed person's.
    pub fn holds(&self, user_id: Option<&str>, anonymous_id: Option<&str>) -> bool {
        if self.digests.is_empty() {
            return false;
        }
        [user_id, anonymous_id]
            .into_iter()
            .flatten()
            .filter(|id| !id.is_empty())
            .any(|id| self.digests.contains(&digest(id)))
    }
}

/// The suppressed identifiers as a warm process last read them, with the table version read.
#[derive(Default)]
struct WarmSuppressed {
    suppressed: Arc<Suppressed>,
}

/// The identifiers suppressed now: read from `audit/erasures` (none before the first erasure),
/// and kept warm while the table does not change.
pub async fn suppressed(lake: &Lake) -> Result<Arc<Suppressed>> {
    let Some(table) = lake.existing_table(Table::Erasures).await? else {
        return Ok(Arc::default());
    };
    let version = table.version().map(|v| v as i64);
    let warm = lake.stage_state::<WarmSuppressed>();
    let mut warm = warm.lock().await;
    if warm.suppressed.version != version || version.is_none() {
        let batches = crate::lake::read_whole(&table, Table::Erasures, &[]).await?;
        let rows = rows_of::<rows::Erasure>(&batches)?;
        warm.suppressed = Arc::new(Suppressed::of(&rows, version));
    }
    Ok(warm.suppressed.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_hex_of_sha256_and_reads_back() {
        let h = identity_hash("user-1");
        assert_eq!(h.len(), 64);
        assert_ne!(h, identity_hash("user-2"));
        assert_eq!(from_hex(&h), Some(digest("user-1")));
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn suppression_matches_either_identifier_and_nothing_else() {
        let row = rows::Erasure {
            request_id: "r".into(),
            identifier_hash: identity_hash("user-1"),
            suppressed_hashes: format!("{} {}", identity_hash("user-1"), identity_hash("anon-1")),
            status: "started".into(),
            requested_at: 0,
            completed_at: None,
            files_removed_by: None,
            rows_removed: "{}".into(),
            table_versions: "{}".into(),
        };
        let s = Suppressed::of(&[row], Some(1));
        assert!(s.holds(Some("user-1"), None));
        assert!(s.holds(Some("user-9"), Some("anon-1")));
        assert!(!s.holds(Some("user-9"), Some("anon-9")));
        assert!(!s.holds(None, Some("")));
        assert!(!Suppressed::default().holds(Some("user-1"), None));
    }
}
