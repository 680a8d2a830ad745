//! Identity stitching: which user an anonymous (device or cookie) id belongs to
//! (`gold/identities`). The rule: an anonymous_id's user is the user_id of its latest valid
//! silver event (greatest `(event_time, event_id)`) that carries both that anonymous_id and a
//! non-empty user_id. Two user_ids are never merged; an anonymous_id seen with several user_ids
//! (a shared device) goes to the latest, and `user_ids` counts them. Recomputed from silver on the
//! exporter's schedule (a whole overwrite, like `gold/retention_weekly`).

use std::collections::{BTreeMap, HashSet};

use super::*;

/// One silver event's identity fields.
#[derive(Debug, Clone, Copy)]
pub struct IdentityEvent<'a> {
    /// The event's anonymous_id, if it has one.
    pub anonymous_id: Option<&'a str>,
    /// The event's user_id, if it has one.
    pub user_id: Option<&'a str>,
    /// The event's time (µs since the epoch).
    pub event_time: i64,
    /// The event's id (orders events of the same time).
    pub event_id: &'a str,
}

/// What is known of one anonymous_id so far.
#[derive(Default)]
struct Seen<'a> {
    /// The latest event carrying a user_id: its (event_time, event_id) and user_id.
    linked: Option<((i64, &'a str), &'a str)>,
    first_seen: i64,
    last_seen: i64,
    events: i64,
    user_ids: HashSet<&'a str>,
}

/// The `gold/identities` rows of `events`, by the stitching rule, in anonymous_id order: one per
/// anonymous_id seen with a non-empty user_id.
pub fn stitch<'a>(events: impl IntoIterator<Item = IdentityEvent<'a>>) -> Vec<rows::Identity<'a>> {
    let mut seen: BTreeMap<&'a str, Seen<'a>> = BTreeMap::new();
    for event in events {
        let Some(anonymous_id) = event.anonymous_id.filter(|a| !a.is_empty()) else {
            continue;
        };
        let entry = seen.entry(anonymous_id).or_insert_with(|| Seen {
            first_seen: event.event_time,
            last_seen: event.event_time,
            ..Seen::default()
        });
        entry.first_seen = entry.first_seen.min(event.event_time);
        entry.last_seen = entry.last_seen.max(event.event_time);
        entry.events += 1;
        if let Some(user_id) = event.user_id.filter(|u| !u.is_empty()) {
            entry.user_ids.insert(user_id);
            let key = (event.event_time, event.event_id);
            if entry.linked.is_none_or(|(latest, _)| key > latest) {
                entry.linked = Some((key, user_id));
            }
        }
    }
    seen.into_iter()
        .filter_map(|(anonymous_id, s)| {
            let (_, user_id) = s.linked?;
            Some(rows::Identity {
                anonymous_id,
                user_id,
                first_seen: s.first_seen,
                last_seen: s.last_seen,
                events: s.events,
                user_ids: s.user_ids.len() as i64,
            })
        })
        .collect()
}

/// The silver columns [`stitch`] reads.
pub const IDENTITY_INPUT: [&str; 4] = ["anonymous_id", "user_id", "event_time", "event_id"];

/// The identity fields of every row of silver `batches` (read with [`IDENTITY_INPUT`]).
pub fn identity_events(batches: &[RecordBatch]) -> Result<Vec<IdentityEvent<'_>>> {
    let mut events = Vec::new();
    for batch in batches {
        let anonymous = typed_column::<StringArray>(batch, "anonymous_id")?;
        let users = typed_column::<StringArray>(batch, "user_id")?;
        let times = typed_column::<TimestampMicrosecondArray>(batch, "event_time")?;
        let ids = typed_column::<StringArray>(batch, "event_id")?;
        for i in 0..batch.num_rows() {
            events.push(IdentityEvent {
                anonymous_id: anonymous.is_valid(i).then(|| anonymous.value(i)),
                user_id: users.is_valid(i).then(|| users.value(i)),
                event_time: times.value(i),
                event_id: ids.value(i),
            });
        }
    }
    Ok(events)
}

/// Recomputes gold/identities from silver (a whole overwrite: running it again gives the same
/// table); returns the number of stitched anonymous ids. It reads four columns of every silver
/// row, so its cost follows the history.
pub async fn refresh(lake: &Lake) -> Result<usize> {
    let batches = match lake.existing_table(Table::Silver).await? {
        Some(silver) => {
            read_dates(
                &silver,
                Table::Silver,
                "event_date",
                |_| true,
                &IDENTITY_INPUT,
            )
            .await?
        }
        None => Vec::new(),
    };
    let events = identity_events(&batches)?;
    let identities = stitch(events);
    overwrite_whole(lake, Table::Identities, &identities).await?;
    Ok(identities.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(
        anonymous_id: &'a str,
        user_id: &'a str,
        t: i64,
        id: &'a str,
    ) -> IdentityEvent<'a> {
        IdentityEvent {
            anonymous_id: (!anonymous_id.is_empty()).then_some(anonymous_id),
            user_id: (!user_id.is_empty()).then_some(user_id),
            event_time: t,
            event_id: id,
        }
    }

    #[test]
    fn an_anonymous_id_goes_to_the_user_of_its_latest_event_carrying_both() {
        let events = [
            // a: browses anonymously, logs in as u1; later the device is u2's (shared).
            event("a", "", 10, "e1"),
            event("a", "u1", 20, "e2"),
            event("a", "u2", 30, "e3"),
            event("a", "", 40, "e4"),
            // b: two events at the same time: the greater event_id decides.
            event("b", "u3", 50, "e6"),
            event("b", "u4", 50, "e5"),
            // c: never logged in, so not stitched; a user_id alone is not an anonymous id.
            event("c", "", 60, "e7"),
            event("", "u5", 70, "e8"),
        ];
        let rows = stitch(events);
        let a = &rows[0];
        assert_eq!((a.anonymous_id, a.user_id), ("a", "u2"));
        assert_eq!(
            (a.first_seen, a.last_seen, a.events, a.user_ids),
            (10, 40, 4, 2)
        );
        let b = &rows[1];
        assert_eq!((b.anonymous_id, b.user_id, b.user_ids), ("b", "u3", 2));
        assert_eq!(rows.len(), 2, "c never logged in");
        // The order events arrive in changes nothing: a late login still decides by its time.
        let mut reversed = events;
        reversed.reverse();
        assert_eq!(stitch(reversed), rows);
    }
}
