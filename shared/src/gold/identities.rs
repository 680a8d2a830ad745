//! Identity stitching: which user an anonymous (device or cookie) id belongs to
//! (`gold/identities`). The rule: an anonymous_id's user is the user_id of its latest valid
//! silver event (greatest `(event_time, event_id)`) that carries both that anonymous_id and a
//! non-empty user_id. Two user_ids are never merged; an anonymous_id seen with several user_ids
//! (a shared device) goes to the latest, and `user_ids` counts them. Recomputed from silver on the
//! exporter's schedule (a whole overwrite, like `gold/retention_weekly`).
//!
//! Gold follows the same rule as it goes ([`People`]): it keeps per anonymous id the event that
//! links it and the dates of its events without a user_id (`gold/anonymous_ids`), counts each
//! silver user_key as the person it belongs to, and when an anonymous id's person changes (a
//! first login, a login on a shared device, a login arriving late) re-computes that person's
//! figures on those dates.

use std::collections::BTreeMap;

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

/// Who each silver user_key is, by the stitching rule, as gold applies it as new silver rows
/// come: an event with a user_id is that user; an event without one is its anonymous id's
/// linked user, else the anonymous id. Keys are [`user_hash`]es. A user_key that is both a
/// user_id and another device's anonymous_id counts as that device (user ids and device ids are
/// told apart by the ids alone, which is what gold/daily_users keeps).
#[derive(Default)]
pub struct People {
    anonymous: HashMap<u128, Anonymous>,
    /// Rows gold/anonymous_ids holds (live or replaced), to tell when to rewrite it.
    stored_rows: usize,
    /// The user_id of each linked user.
    user_ids: HashMap<u128, Box<str>>,
    /// The anonymous ids linked to each user.
    members: HashMap<u128, HashSet<u128>>,
}

/// What gold keeps of one anonymous id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Anonymous {
    /// The anonymous id itself.
    id: Box<str>,
    /// The user its latest event carrying both ids names, with that event's (time, id).
    link: Option<(i64, Box<str>, u128)>,
    /// First and last date of its events without a user_id.
    dates: Option<(i32, i32)>,
}

/// An anonymous id whose person changed: its events without a user_id on `dates` belonged to
/// each of `persons` at some silver version of the run (its person before the run, or itself
/// when it is new, then each user it was linked to, the last one its person now). Gold tables
/// written by a run that stopped midway may hold any of them, so all are re-computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rekey {
    pub(super) persons: Vec<u128>,
    pub(super) dates: (i32, i32),
}

/// What [`People::observe`] found in a run's new rows.
#[derive(Default)]
pub(super) struct Observed {
    /// Anonymous ids whose person changed.
    pub(super) rekeys: Vec<Rekey>,
    /// The gold/anonymous_ids rows of the anonymous ids that changed.
    pub(super) rows: Vec<rows::AnonymousId>,
}

/// gold/anonymous_ids is rewritten with its live rows only past twice this many rows.
const MIN_ROWS_TO_COMPACT: usize = 10_000;

/// The silver columns [`People::observe`] reads besides those of the sessions.
pub const PEOPLE_INPUT: [&str; 2] = ["anonymous_id", "user_id"];

impl People {
    /// The stitching state as gold/anonymous_ids holds it (the latest row of each anonymous id).
    pub async fn load(table: &DeltaTable) -> Result<People> {
        let mut people = People::default();
        if !has_data_files(table) {
            return Ok(people);
        }
        let batches = read_whole(table, Table::AnonymousIds, &[]).await?;
        let mut latest: HashMap<String, rows::AnonymousId> = HashMap::default();
        let rows = rows_of::<rows::AnonymousId>(&batches)?;
        people.stored_rows = rows.len();
        for row in rows {
            match latest.get(&row.anonymous_id) {
                Some(held) if held.silver_version >= row.silver_version => {}
                _ => {
                    latest.insert(row.anonymous_id.clone(), row);
                }
            }
        }
        for row in latest.into_values() {
            let key = user_hash(&row.anonymous_id);
            let link = match (row.user_id, row.linked_at, row.linked_event_id) {
                (Some(user_id), Some(at), Some(event_id)) => {
                    let user = people.user(&user_id);
                    people.members.entry(user).or_default().insert(key);
                    Some((at, event_id.into_boxed_str(), user))
                }
                _ => None,
            };
            let dates = row.first_date.zip(row.last_date);
            let id = row.anonymous_id.into_boxed_str();
            people.anonymous.insert(key, Anonymous { id, link, dates });
        }
        Ok(people)
    }

    /// The hash of `user_id`, remembering the id.
    fn user(&mut self, user_id: &str) -> u128 {
        let user = user_hash(user_id);
        self.user_ids.entry(user).or_insert_with(|| user_id.into());
        user
    }

    /// The person a silver user_key (as a hash) is.
    pub(super) fn person(&self, user_key: u128) -> u128 {
        self.linked_user(user_key).unwrap_or(user_key)
    }

    /// The person key of a silver user_key: its linked user_id, else the key itself.
    pub(super) fn person_key<'a>(&'a self, user_key: &'a str, hash: u128) -> &'a str {
        self.linked_user(hash)
            .and_then(|user| self.user_ids.get(&user))
            .map_or(user_key, |id| id)
    }

    fn linked_user(&self, user_key: u128) -> Option<u128> {
        let (_, _, user) = self.anonymous.get(&user_key)?.link.as_ref()?;
        Some(*user)
    }

    /// The silver user_keys (hashes) that are `person`: itself and the anonymous ids linked to it.
    pub(super) fn keys_of(&self, person: u128) -> impl Iterator<Item = u128> + '_ {
        std::iter::once(person).chain(self.members.get(&person).into_iter().flatten().copied())
    }

    /// Takes in new silver rows (with [`PEOPLE_INPUT`], `event_time` and `event_id`), each batch
    /// with its event date, in commit order, at silver version `version`: links and dates move
    /// on, and the anonymous ids whose person changed are returned with the rows to write.
    pub(super) fn observe<'a>(
        &mut self,
        batches: impl Iterator<Item = (&'a RecordBatch, i32)>,
        version: i64,
    ) -> Result<Observed> {
        // What gold knew of each anonymous id the rows name before them (none when it is new),
        // and the persons it has been since.
        let mut before: HashMap<u128, (Option<Anonymous>, Vec<u128>)> = HashMap::default();
        for (batch, date) in batches {
            for event in identity_events(std::slice::from_ref(batch))? {
                let Some(anonymous_id) = event.anonymous_id.filter(|a| !a.is_empty()) else {
                    continue;
                };
                let key = user_hash(anonymous_id);
                let (_, persons) = before.entry(key).or_insert_with(|| {
                    let known = self.anonymous.get(&key).cloned();
                    let person = known.as_ref().and_then(|a| a.link.as_ref()).map(|l| l.2);
                    (known, vec![person.unwrap_or(key)])
                });
                let user_id = event.user_id.filter(|u| !u.is_empty());
                let user = user_id.map(|u| self.user(u));
                let entry = self.anonymous.entry(key).or_insert_with(|| Anonymous {
                    id: anonymous_id.into(),
                    ..Anonymous::default()
                });
                match user {
                    Some(user) => {
                        let at = (event.event_time, event.event_id);
                        if entry
                            .link
                            .as_ref()
                            .is_none_or(|(t, id, _)| at > (*t, &**id))
                        {
                            entry.link = Some((at.0, at.1.into(), user));
                            if persons.last() != Some(&user) {
                                persons.push(user);
                            }
                        }
                    }
                    None => {
                        let (lo, hi) = entry.dates.unwrap_or((date, date));
                        entry.dates = Some((lo.min(date), hi.max(date)));
                    }
                }
            }
        }
        let mut observed = Observed::default();
        for (key, (old, mut persons)) in before {
            let now = &self.anonymous[&key];
            if old.as_ref() == Some(now) {
                continue;
            }
            let user_of = |a: Option<&Anonymous>| a.and_then(|a| a.link.as_ref()).map(|l| l.2);
            let (from, to) = (user_of(old.as_ref()), user_of(Some(now)));
            if from != to {
                if let Some(from) = from {
                    self.members.entry(from).or_default().remove(&key);
                }
                if let Some(to) = to {
                    self.members.entry(to).or_default().insert(key);
                }
            }
            persons.sort_unstable();
            persons.dedup();
            if let (true, Some(dates)) = (persons.len() > 1, now.dates) {
                observed.rekeys.push(Rekey { persons, dates });
            }
            observed.rows.push(self.row(now, version));
        }
        observed
            .rows
            .sort_by(|a, b| a.anonymous_id.cmp(&b.anonymous_id));
        Ok(observed)
    }

    /// The gold/anonymous_ids row of `entry`.
    fn row(&self, entry: &Anonymous, version: i64) -> rows::AnonymousId {
        let link = entry.link.as_ref();
        rows::AnonymousId {
            anonymous_id: entry.id.to_string(),
            user_id: link.map(|l| self.user_ids[&l.2].to_string()),
            linked_at: link.map(|l| l.0),
            linked_event_id: link.map(|l| l.1.to_string()),
            first_date: entry.dates.map(|d| d.0),
            last_date: entry.dates.map(|d| d.1),
            silver_version: version,
        }
    }

    /// Forgets the anonymous ids among `keys` (user_key hashes) and every anonymous id linked to
    /// a user among them (an erased person's): their events are gone from silver. The dates
    /// their events without a user_id were on, if any.
    pub(super) fn forget(&mut self, keys: &HashSet<u128>) -> BTreeSet<i32> {
        let mut dates = BTreeSet::new();
        self.anonymous.retain(|key, entry| {
            let linked = entry.link.as_ref().is_some_and(|l| keys.contains(&l.2));
            if !keys.contains(key) && !linked {
                return true;
            }
            if let Some((lo, hi)) = entry.dates {
                dates.extend(lo..=hi);
            }
            false
        });
        for key in keys {
            self.members.remove(key);
            self.user_ids.remove(key);
        }
        for members in self.members.values_mut() {
            members.retain(|m| !keys.contains(m));
        }
        dates
    }

    /// Every live row of gold/anonymous_ids, at silver version `version` (what a rewrite of
    /// the whole table writes).
    pub(super) fn live_rows(&mut self, version: i64) -> Vec<rows::AnonymousId> {
        let mut live: Vec<rows::AnonymousId> = self
            .anonymous
            .values()
            .map(|entry| self.row(entry, version))
            .collect();
        live.sort_by(|a, b| a.anonymous_id.cmp(&b.anonymous_id));
        self.stored_rows = live.len();
        live
    }

    /// What a run writes to gold/anonymous_ids for the `changed` rows: those rows, appended; or,
    /// once the table would hold more than twice the live rows, every live row in their place
    /// (then `true`), so that a cold start reads at most about twice what is live.
    pub(super) fn rows_to_write(
        &mut self,
        changed: Vec<rows::AnonymousId>,
        version: i64,
    ) -> (Vec<rows::AnonymousId>, bool) {
        let stored = self.stored_rows + changed.len();
        if changed.is_empty() || stored <= 2 * self.anonymous.len().max(MIN_ROWS_TO_COMPACT) {
            self.stored_rows = stored;
            return (changed, false);
        }
        (self.live_rows(version), true)
    }
}

/// `batches` (silver rows) with each `user_key` replaced by its person key under `identities`
/// (gold/identities rows): the stitching rule applied row by row, as a from-scratch
/// computation of gold sees silver.
pub fn personalize(
    batches: &[RecordBatch],
    identities: &[rows::Identity<'_>],
) -> Result<Vec<RecordBatch>> {
    let linked: HashMap<&str, &str> = identities
        .iter()
        .map(|i| (i.anonymous_id, i.user_id))
        .collect();
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let keys = typed_column::<StringArray>(batch, "user_key")?;
        let users = typed_column::<StringArray>(batch, "user_id")?;
        let anonymous = typed_column::<StringArray>(batch, "anonymous_id")?;
        let persons: StringArray = (0..batch.num_rows())
            .map(|i| match opt(users, i).filter(|u| !u.is_empty()) {
                Some(user_id) => Some(user_id),
                None => opt(anonymous, i)
                    .and_then(|a| linked.get(a).copied())
                    .or_else(|| opt(keys, i)),
            })
            .collect();
        let index = batch.schema().index_of("user_key")?;
        let mut columns = batch.columns().to_vec();
        columns[index] = std::sync::Arc::new(persons);
        out.push(RecordBatch::try_new(batch.schema(), columns)?);
    }
    Ok(out)
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

    /// Silver rows as [`People::observe`] reads them: (anonymous_id, user_id, time, event_id).
    fn silver_rows(rows: &[(&str, &str, i64, &str)]) -> RecordBatch {
        use arrow::array::ArrayRef;
        let text = |values: Vec<&str>| -> ArrayRef {
            let values: StringArray = values
                .into_iter()
                .map(|v| Some(v).filter(|v| !v.is_empty()))
                .collect();
            std::sync::Arc::new(values)
        };
        let times: TimestampMicrosecondArray = rows.iter().map(|r| Some(r.2)).collect();
        RecordBatch::try_from_iter([
            ("anonymous_id", text(rows.iter().map(|r| r.0).collect())),
            ("user_id", text(rows.iter().map(|r| r.1).collect())),
            ("event_time", std::sync::Arc::new(times) as ArrayRef),
            ("event_id", text(rows.iter().map(|r| r.3).collect())),
        ])
        .unwrap()
    }

    #[test]
    fn a_change_of_person_is_found_once_and_only_for_ids_with_anonymous_events() {
        let mut people = People::default();
        let (a, u1, u2) = (user_hash("a"), user_hash("u1"), user_hash("u2"));
        // Day 10: a browses anonymously; c logs in at once (it has no anonymous events).
        let first = silver_rows(&[("a", "", 1, "e1"), ("c", "u1", 2, "e2")]);
        let seen = people.observe([(&first, 10)].into_iter(), 0).unwrap();
        assert!(
            seen.rekeys.is_empty(),
            "an id that stays itself, or has no anonymous events, re-keys nothing"
        );
        assert_eq!(seen.rows.len(), 2);
        assert_eq!((people.person(a), people.person(user_hash("c"))), (a, u1));

        // Day 12: a logs in as u1: its day-10 events move from a to u1.
        let login = silver_rows(&[("a", "u1", 5, "e3")]);
        let seen = people.observe([(&login, 12)].into_iter(), 1).unwrap();
        let moved = Rekey {
            persons: sorted(vec![a, u1]),
            dates: (10, 10),
        };
        assert_eq!(seen.rekeys, [moved]);
        assert_eq!(people.person_key("a", a), "u1");
        assert_eq!(
            people.keys_of(u1).collect::<HashSet<_>>(),
            HashSet::from_iter([u1, a, user_hash("c")])
        );

        // A login as u2 arriving late, older than u1's: nothing changes, and no row is written.
        let late = silver_rows(&[("a", "u2", 4, "e4")]);
        let seen = people.observe([(&late, 11)].into_iter(), 2).unwrap();
        assert!(seen.rekeys.is_empty() && seen.rows.is_empty());

        // Anonymous events on day 13, then u2 logs in later: a goes to u2, days 10 to 13.
        let later = silver_rows(&[("a", "", 6, "e5"), ("a", "u2", 7, "e6")]);
        let seen = people.observe([(&later, 13)].into_iter(), 3).unwrap();
        assert_eq!(
            seen.rekeys,
            [Rekey {
                persons: sorted(vec![u1, u2]),
                dates: (10, 13)
            }]
        );
        assert_eq!(people.keys_of(u1).collect::<Vec<_>>(), [u1, user_hash("c")]);
        let row = &seen.rows[0];
        assert_eq!(
            (
                row.user_id.as_deref(),
                row.linked_at,
                row.first_date,
                row.last_date
            ),
            (Some("u2"), Some(7), Some(10), Some(13))
        );

        // A new device that browses and logs in within one run: a run that stopped midway may
        // have written its anonymous stretch under its own id, so both are re-computed.
        let d = user_hash("d");
        let new_device = silver_rows(&[("d", "", 8, "e7"), ("d", "u1", 9, "e8")]);
        let seen = people.observe([(&new_device, 14)].into_iter(), 4).unwrap();
        let both = Rekey {
            persons: sorted(vec![d, u1]),
            dates: (14, 14),
        };
        assert_eq!(seen.rekeys, [both]);
    }

    fn sorted(mut persons: Vec<u128>) -> Vec<u128> {
        persons.sort_unstable();
        persons
    }

    #[test]
    fn personalize_follows_the_rule_row_by_row() {
        let identities = [rows::Identity {
            anonymous_id: "a",
            user_id: "u1",
            first_seen: 0,
            last_seen: 0,
            events: 2,
            user_ids: 1,
        }];
        let rows = silver_rows(&[("a", "", 1, "e1"), ("a", "u2", 2, "e2"), ("b", "", 3, "e3")]);
        let keys: StringArray = vec![Some("a"), Some("u2"), Some("b")].into_iter().collect();
        let schema = rows.schema();
        let columns = rows.columns().iter().cloned();
        let named = schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .zip(columns);
        let user_key = ("user_key".to_string(), std::sync::Arc::new(keys) as _);
        let batch = RecordBatch::try_from_iter(named.chain([user_key])).unwrap();
        let out = personalize(&[batch], &identities).unwrap();
        let persons = typed_column::<StringArray>(&out[0], "user_key").unwrap();
        // An event with a user_id keeps it; an anonymous one goes to its device's user.
        assert_eq!(
            persons.iter().collect::<Vec<_>>(),
            [Some("u1"), Some("u2"), Some("b")]
        );
    }
}
