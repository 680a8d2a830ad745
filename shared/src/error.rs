//! Error type of the library.

/// Everything that can go wrong in a pipeline stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Delta table operation failed.
    #[error("delta table {table}: {source}")]
    Delta {
        /// The table's path under the lake root.
        table: String,
        /// What delta-rs reported (boxed: it is most of the error's size, and every `Result` of
        /// the library carries the error inline).
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    /// An object store operation failed.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// An Arrow compute or conversion failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A DataFusion query failed.
    #[error("query: {0}")]
    Query(#[from] deltalake::datafusion::error::DataFusionError),
    /// Parquet read or write failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The lake URI or a table location is not usable.
    #[error("invalid lake location {uri:?}: {reason}")]
    Location {
        /// The location given.
        uri: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The lake cannot be written (found by writing a probe before work that would otherwise
    /// fail half-way).
    #[error("the lake {uri} is not writable: {source}")]
    NotWritable {
        /// The lake root.
        uri: String,
        /// What the store said.
        #[source]
        source: object_store::Error,
    },
    /// A setting (an environment variable) is missing or cannot be used.
    #[error("setting {name}: {reason}")]
    Setting {
        /// The variable's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A trigger event the function cannot act on (never helped by a retry).
    #[error("invalid trigger event: {0}")]
    Trigger(#[from] TriggerError),
    /// A commit the stage must read is not in the table's log (removed by log cleanup after its
    /// retention, or never written).
    #[error(
        "{table}: commit {version} is not in the log (log retention passed, or the table was replaced)"
    )]
    MissingCommit {
        /// The table's path under the lake root.
        table: String,
        /// The commit's version.
        version: i64,
    },
    /// A stage task of the embedded pipeline stopped, or failed to join (`cause`).
    #[error("embedded pipeline: the {stage} stage stopped{}", cause.as_deref().map(|c| format!(": {c}")).unwrap_or_default())]
    Embedded {
        /// The stage whose task stopped.
        stage: &'static str,
        /// Why its task ended, when it failed to join.
        cause: Option<String>,
    },
    /// A Kafka batch holds records at or below bronze's watermark for their partition that
    /// bronze cannot have written: the topic was recreated (its offsets restarted), or the
    /// consumer group was rewound far back. Nothing of the batch is written.
    #[error(
        "{KAFKA_SOURCE_RESET}: {topic} partition {partition}: offset {offset} is at or below \
         bronze's watermark {watermark}, but {evidence}. Nothing was written. If the topic was \
         recreated on purpose, set BRONZE_KAFKA_GENERATION to a new name so that bronze keeps new \
         watermarks"
    )]
    KafkaSourceReset {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset of the record that cannot be a redelivery.
        offset: i64,
        /// The highest offset bronze has written for the partition.
        watermark: i64,
        /// Why it cannot be a redelivery.
        evidence: String,
    },
    /// A landed file could not be read.
    #[error("landed file {key}: {reason}")]
    LandedFile {
        /// The file's key in the lake.
        key: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// JSON (de)serialisation of an event or log entry failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Local I/O failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A table lacks a column the stage reads, or has it with another type.
    #[error("column {column:?}: {reason}")]
    Column {
        /// The column's name.
        column: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A batch does not convert to or from its row struct (a column's name, type or nullability
    /// differs from the struct's field).
    #[error("rows: {0}")]
    Rows(#[from] serde_arrow::Error),
    /// Another writer kept committing to the table first; every attempt re-checked and lost.
    #[error("{table}: lost the commit race {attempts} times to concurrent writers")]
    Contended {
        /// The table (or stage) whose commits kept losing.
        table: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Tables a run must read at one version were not: another writer committed while the run
    /// opened them. The run lost a race, and a retry from fresh reads can succeed.
    #[error("{table}: another writer committed while this run read the tables")]
    MovedWhileRead {
        /// The table found ahead of the others.
        table: String,
    },
    /// An erasure request that cannot be carried out as given (a malformed request object, an
    /// id that would keep the identifier); a retry of the same request fails the same way.
    #[error("erasure request: {reason}")]
    Erasure {
        /// What is wrong with it.
        reason: String,
    },
    /// A scratch file of the export has a path DuckDB cannot be given (not UTF-8).
    #[error("export: scratch path {} is not UTF-8", path.display())]
    Export {
        /// The scratch file.
        path: std::path::PathBuf,
    },
    /// The DuckDB export failed.
    #[cfg(feature = "duckdb")]
    #[error("duckdb: {0}")]
    DuckDb(#[from] duckdb::Error),
}

/// Why a trigger event cannot be acted on.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// The event lacks what the function reads.
    #[error("expected {expected}")]
    Shape {
        /// What the function expects.
        expected: &'static str,
    },
    /// The event names an object the function is not wired for.
    #[error("object {key:?} is not {expected}")]
    ForeignObject {
        /// The object's key (or s3:// URL).
        key: String,
        /// What the function's objects are.
        expected: String,
    },
    /// A schedule's payload names another function.
    #[error("a schedule for {named} reached {function}: check the schedule's target")]
    WrongTarget {
        /// The function the payload names.
        named: String,
        /// The function it reached.
        function: String,
    },
}

impl Error {
    /// Wraps a Delta error with the table it happened on.
    pub fn delta(table: impl Into<String>) -> impl FnOnce(deltalake::DeltaTableError) -> Error {
        let table = table.into();
        move |source| Error::Delta {
            table,
            source: Box::new(source),
        }
    }
}

impl Error {
    /// True when a commit failed because another writer committed first (a conflicting
    /// transaction or the same version): re-reading the table and trying again can succeed.
    pub fn is_lost_race(&self) -> bool {
        use deltalake::DeltaTableError as D;
        use deltalake::kernel::transaction::TransactionError as T;
        match self {
            Error::Delta { source, .. } => matches!(
                **source,
                D::VersionAlreadyExists(_)
                    | D::Transaction {
                        source: T::CommitConflict(_) | T::MaxCommitAttempts(_)
                    }
            ),
            Error::MovedWhileRead { .. } => true,
            _ => false,
        }
    }
}

impl Error {
    /// False when the same input will fail the same way however often it is retried (a malformed
    /// trigger, an unreadable landed file, a table without a column the stage reads, a lake
    /// location or a setting that cannot work, a store that refuses the request); true for
    /// everything else, such as a store that did not answer
    /// or a lost commit race. What is not known to be permanent counts as retryable, so that
    /// nothing is skipped that a retry could have saved.
    pub fn is_retryable(&self) -> bool {
        use deltalake::DeltaTableError as D;
        use object_store::Error as O;
        match self {
            Error::Trigger(_)
            | Error::MissingCommit { .. }
            | Error::LandedFile { .. }
            | Error::KafkaSourceReset { .. }
            | Error::Location { .. }
            | Error::Setting { .. }
            | Error::Column { .. }
            | Error::Rows(_)
            | Error::Json(_)
            | Error::Erasure { .. }
            | Error::Arrow(_) => false,
            Error::ObjectStore(e) | Error::NotWritable { source: e, .. } => !matches!(
                e,
                O::NotFound { .. }
                    | O::InvalidPath { .. }
                    | O::PermissionDenied { .. }
                    | O::Unauthenticated { .. }
                    | O::NotSupported { .. }
                    | O::NotImplemented { .. }
                    | O::UnknownConfigurationKey { .. }
            ),
            Error::Delta { source, .. } => !matches!(
                **source,
                D::NotATable(_)
                    | D::InvalidTableLocation(_)
                    | D::SchemaMismatch { .. }
                    | D::MissingFeature { .. }
                    | D::InvalidData { .. }
            ),
            _ => true,
        }
    }

    /// The variant's name, for error reports that machines read (Lambda's `errorType`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Delta { .. } => "Delta",
            Error::ObjectStore(_) => "ObjectStore",
            Error::Arrow(_) => "Arrow",
            Error::Query(_) => "Query",
            Error::Parquet(_) => "Parquet",
            Error::Location { .. } => "Location",
            Error::NotWritable { .. } => "NotWritable",
            Error::Setting { .. } => "Setting",
            Error::Trigger(_) => "Trigger",
            Error::MissingCommit { .. } => "MissingCommit",
            Error::Embedded { .. } => "Embedded",
            Error::LandedFile { .. } => "LandedFile",
            Error::KafkaSourceReset { .. } => "KafkaSourceReset",
            Error::Json(_) => "Json",
            Error::Io(_) => "Io",
            Error::Column { .. } => "Column",
            Error::Rows(_) => "Rows",
            Error::Contended { .. } => "Contended",
            Error::MovedWhileRead { .. } => "MovedWhileRead",
            Error::Erasure { .. } => "Erasure",
            Error::Export { .. } => "Export",
            #[cfg(feature = "duckdb")]
            Error::DuckDb(_) => "DuckDb",
        }
    }
}

impl From<clickstream_landed::Unreadable> for Error {
    fn from(e: clickstream_landed::Unreadable) -> Error {
        Error::LandedFile {
            key: e.key,
            reason: e.reason,
        }
    }
}

/// How [`Error::KafkaSourceReset`] begins: Terraform's log metric filter counts the log lines
/// holding it.
pub const KAFKA_SOURCE_RESET: &str = "Kafka source reset";

/// Result alias of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lake_that_refuses_writes_is_permanent_and_one_that_did_not_answer_is_retryable() {
        let refused = Error::NotWritable {
            uri: "s3://lake/".into(),
            source: object_store::Error::PermissionDenied {
                path: "_clickstream/write-probe".into(),
                source: "AccessDenied".into(),
            },
        };
        let silent = Error::NotWritable {
            uri: "s3://lake/".into(),
            source: object_store::Error::Generic {
                store: "S3",
                source: "timed out".into(),
            },
        };
        assert!(!refused.is_retryable(), "{refused}");
        assert!(silent.is_retryable(), "{silent}");
        assert_eq!(refused.kind(), "NotWritable");
        let setting = Error::Setting {
            name: "LAKE_URI".into(),
            reason: "not set".into(),
        };
        assert!(!setting.is_retryable());
        assert_eq!(setting.to_string(), "setting LAKE_URI: not set");
    }
}
