//! Why a record is quarantined: the reason codes of `silver/quarantine` and their detail.

/// Why a record was quarantined. The code is what lands in `silver/quarantine.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Larger than [`MAX_RECORD_BYTES`](super::MAX_RECORD_BYTES).
    TooLarge,
    /// Bytes are not valid UTF-8.
    NotUtf8,
    /// Text is not valid JSON.
    NotJson,
    /// JSON, but not an object.
    NotObject,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong type or a value outside its contract.
    InvalidField,
    /// event_time cannot be parsed.
    BadEventTime,
    /// event_time is more than [`MAX_FUTURE`](super::MAX_FUTURE) after ingest time.
    FutureEventTime,
    /// event_time is before [`MIN_EVENT_TIME_MS`](super::MIN_EVENT_TIME_MS) (2000-01-01).
    PastEventTime,
}

impl RejectReason {
    /// All reasons, in code order.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::TooLarge,
        RejectReason::NotUtf8,
        RejectReason::NotJson,
        RejectReason::NotObject,
        RejectReason::MissingField,
        RejectReason::InvalidField,
        RejectReason::BadEventTime,
        RejectReason::FutureEventTime,
        RejectReason::PastEventTime,
    ];

    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::NotUtf8 => "not_utf8",
            RejectReason::NotJson => "not_json",
            RejectReason::NotObject => "not_object",
            RejectReason::MissingField => "missing_field",
            RejectReason::InvalidField => "invalid_field",
            RejectReason::BadEventTime => "bad_event_time",
            RejectReason::FutureEventTime => "future_event_time",
            RejectReason::PastEventTime => "past_event_time",
        }
    }
}

/// A rejected record: reason code plus a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Why the record was rejected.
    pub reason: RejectReason,
    /// What exactly was wrong, for a person.
    pub detail: String,
}

pub(super) fn reject(reason: RejectReason, detail: impl Into<String>) -> Rejection {
    Rejection {
        reason,
        detail: detail.into(),
    }
}
