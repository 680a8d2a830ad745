//! What an erasure removes from each table, row by row, and finds in landed files.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, BinaryArray, BooleanArray, RecordBatch, StringArray};
use memchr::memmem::Finder;

use super::Person;
use crate::error::Result;
use crate::lake::{Edit, typed_column};

/// Finds any of a person's identifiers in text.
pub(super) struct Needles {
    finders: Vec<Finder<'static>>,
}

impl Needles {
    /// The identifiers as they appear in text (`quoted`: as JSON strings, quotes included, so
    /// that `user-1` does not match inside `user-12`).
    pub(super) fn of(person: &Person, quoted: bool) -> Needles {
        let finders = person
            .identifiers()
            .into_iter()
            .map(|id| match quoted {
                true => serde_json::to_string(id).unwrap_or_default().into_bytes(),
                false => id.as_bytes().to_vec(),
            })
            .map(|needle| Finder::new(&needle).into_owned())
            .collect();
        Needles { finders }
    }

    /// True when `haystack` holds one of the identifiers.
    pub(super) fn in_bytes(&self, haystack: &[u8]) -> bool {
        self.finders.iter().any(|f| f.find(haystack).is_some())
    }

    /// The longest identifier in bytes (a window of text must overlap by this much).
    pub(super) fn longest(&self) -> usize {
        self.finders
            .iter()
            .map(|f| f.needle().len())
            .max()
            .unwrap_or(0)
    }
}

/// `batch` without the rows `drop` marks.
fn without(batch: &RecordBatch, drop: &[bool]) -> Result<Edit> {
    let removed = drop.iter().filter(|d| **d).count();
    if removed == 0 {
        return Ok(Edit::Keep);
    }
    let keep: BooleanArray = drop.iter().map(|d| Some(!d)).collect();
    Ok(Edit::Replace {
        batch: arrow::compute::filter_record_batch(batch, &keep)?,
        removed,
        changed: 0,
    })
}

/// bronze/events: the records whose raw payload names one of the identifiers as a JSON string
/// (their user_id or anonymous_id, or any other field holding exactly it). Every landed file
/// bronze holds records of is noted in `files_read`.
pub(super) fn bronze(
    batch: &RecordBatch,
    needles: &Needles,
    files_read: &std::sync::Mutex<BTreeSet<String>>,
) -> Result<Edit> {
    let payload = typed_column::<BinaryArray>(batch, "payload")?;
    let file_keys = typed_column::<StringArray>(batch, "file_key")?;
    let drop: Vec<bool> = (0..batch.num_rows())
        .map(|i| needles.in_bytes(payload.value(i)))
        .collect();
    let mut files = files_read
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut last = None;
    for key in file_keys.iter().flatten() {
        if last != Some(key) {
            last = Some(key);
            if !files.contains(key) {
                files.insert(key.to_string());
            }
        }
    }
    without(batch, &drop)
}

/// silver/quarantine: the rejected records whose raw text holds one of the identifiers.
pub(super) fn quarantine(batch: &RecordBatch, needles: &Needles) -> Result<Edit> {
    let raw = typed_column::<StringArray>(batch, "raw")?;
    let drop: Vec<bool> = (0..batch.num_rows())
        .map(|i| needles.in_bytes(raw.value(i).as_bytes()))
        .collect();
    without(batch, &drop)
}

/// silver/events: the person's events (their user_id, or no user_id and one of their anonymous
/// ids) go; another person's events that carry one of their anonymous ids (a shared device)
/// stay, with the anonymous_id cleared (their person key is their own user_id, so no figure
/// changes).
pub(super) fn silver(batch: &RecordBatch, person: &Person) -> Result<Edit> {
    let user_ids = typed_column::<StringArray>(batch, "user_id")?;
    let anonymous_ids = typed_column::<StringArray>(batch, "anonymous_id")?;
    fn text(a: &StringArray, i: usize) -> Option<&str> {
        a.is_valid(i).then(|| a.value(i)).filter(|s| !s.is_empty())
    }
    let mut drop = vec![false; batch.num_rows()];
    let mut redact = vec![false; batch.num_rows()];
    for i in 0..batch.num_rows() {
        let anonymous = text(anonymous_ids, i).is_some_and(|a| person.anonymous_ids.contains(a));
        match text(user_ids, i) {
            Some(user) if person.user_id.as_deref() == Some(user) => drop[i] = true,
            Some(_) => redact[i] = anonymous,
            None => drop[i] = anonymous,
        }
    }
    let removed = drop.iter().filter(|d| **d).count();
    let changed = redact.iter().filter(|r| **r).count();
    if removed + changed == 0 {
        return Ok(Edit::Keep);
    }
    let cleared: StringArray = anonymous_ids
        .iter()
        .zip(&redact)
        .map(|(a, r)| if *r { None } else { a })
        .collect();
    let mut columns = batch.columns().to_vec();
    columns[batch.schema().index_of("anonymous_id")?] = Arc::new(cleared);
    let redacted = RecordBatch::try_new(batch.schema(), columns)?;
    let keep: BooleanArray = drop.iter().map(|d| Some(!d)).collect();
    Ok(Edit::Replace {
        batch: arrow::compute::filter_record_batch(&redacted, &keep)?,
        removed,
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    fn person() -> Person {
        Person {
            identifier: "u1".into(),
            user_id: Some("u1".into()),
            anonymous_ids: ["a1".to_string()].into(),
            requested_at: 0,
        }
    }

    fn identity_batch(rows: &[(Option<&str>, Option<&str>)]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("anonymous_id", DataType::Utf8, true),
        ]);
        let users: StringArray = rows.iter().map(|r| r.0).collect();
        let anonymous: StringArray = rows.iter().map(|r| r.1).collect();
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(users), Arc::new(anonymous)]).unwrap()
    }

    #[test]
    fn silver_drops_the_persons_events_and_clears_their_device_in_anothers() {
        let batch = identity_batch(&[
            (Some("u1"), Some("a9")),
            (None, Some("a1")),
            (Some("u2"), Some("a1")),
            (Some("u2"), Some("a2")),
            (None, Some("a3")),
        ]);
        let Edit::Replace {
            batch,
            removed,
            changed,
        } = silver(&batch, &person()).unwrap()
        else {
            panic!("the batch holds the person");
        };
        assert_eq!((removed, changed), (2, 1));
        let users = typed_column::<StringArray>(&batch, "user_id").unwrap();
        let anonymous = typed_column::<StringArray>(&batch, "anonymous_id").unwrap();
        let rows: Vec<_> = users.iter().zip(anonymous.iter()).collect();
        assert_eq!(
            rows,
            [
                (Some("u2"), None),
                (Some("u2"), Some("a2")),
                (None, Some("a3"))
            ]
        );
        let untouched = identity_batch(&[(Some("u2"), Some("a2"))]);
        assert!(matches!(silver(&untouched, &person()).unwrap(), Edit::Keep));
    }

    #[test]
    fn quoted_needles_match_whole_json_strings_only() {
        let needles = Needles::of(&person(), true);
        assert!(needles.in_bytes(br#"{"user_id":"u1"}"#));
        assert!(needles.in_bytes(br#"{"anonymous_id": "a1"}"#));
        assert!(!needles.in_bytes(br#"{"user_id":"u12"}"#));
        let plain = Needles::of(&person(), false);
        assert!(plain.in_bytes(b"not json u12"));
    }
}
