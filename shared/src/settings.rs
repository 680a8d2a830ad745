//! Each function's settings, read from the environment in one place. The variables' names are
//! the constants here: the CLI's `env =` attributes, Terraform's check
//! (`infra/tests/terraform.rs`) and the README's table of variables use the same names.

use std::time::Duration;

use crate::bronze::{BronzeOptions, LandedLimits};
use crate::error::{Error, Result};
use crate::lake::Lake;

/// Lake root: a directory or `s3://bucket/prefix` (every function; required).
pub const LAKE_URI: &str = "LAKE_URI";
/// Seconds one request to the lake's store, and its retries, may take (every function; default
/// [`crate::lake::DEFAULT_LAKE_TIMEOUT_SECONDS`]).
pub const LAKE_TIMEOUT_SECONDS: &str = "LAKE_TIMEOUT_SECONDS";
/// Comma-separated funnel steps (gold-transformer; default [`crate::gold::DEFAULT_FUNNEL`]).
pub const FUNNEL_STEPS: &str = "FUNNEL_STEPS";
/// VACUUM's retention in hours (maintenance; default
/// [`crate::maintenance::DEFAULT_VACUUM_RETENTION_HOURS`]).
pub const VACUUM_RETENTION_HOURS: &str = "VACUUM_RETENTION_HOURS";
/// Most bytes a landed file may hold decompressed (bronze-writer; default
/// [`crate::bronze::DEFAULT_MAX_FILE_BYTES`]).
pub const BRONZE_MAX_FILE_BYTES: &str = "BRONZE_MAX_FILE_BYTES";
/// Most bytes of one landed record (bronze-writer; default
/// [`crate::bronze::DEFAULT_MAX_RECORD_BYTES`]).
pub const BRONZE_MAX_RECORD_BYTES: &str = "BRONZE_MAX_RECORD_BYTES";
/// Most bytes of a landed `.json` file, which is read whole (bronze-writer; default
/// [`crate::bronze::DEFAULT_MAX_DOCUMENT_BYTES`]).
pub const BRONZE_MAX_DOCUMENT_BYTES: &str = "BRONZE_MAX_DOCUMENT_BYTES";
/// A name for the current generation of the Kafka topics, when they were recreated (bronze-writer;
/// default none): bronze keeps each partition's watermark per source and generation.
pub const BRONZE_KAFKA_GENERATION: &str = "BRONZE_KAFKA_GENERATION";
/// `true` to remove an erased person's rewritten files at once (forget; default `false`: they go
/// at maintenance's VACUUM after its retention).
pub const FORGET_NOW: &str = "FORGET_NOW";
/// The function's name, which the Lambda runtime sets (not Terraform): the `Stage` dimension of
/// the function's metrics.
pub const LAMBDA_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
/// Every variable above that the deployment sets.
pub const ALL: [&str; 9] = [
    LAKE_URI,
    LAKE_TIMEOUT_SECONDS,
    FUNNEL_STEPS,
    VACUUM_RETENTION_HOURS,
    BRONZE_MAX_FILE_BYTES,
    BRONZE_MAX_RECORD_BYTES,
    BRONZE_MAX_DOCUMENT_BYTES,
    BRONZE_KAFKA_GENERATION,
    FORGET_NOW,
];

/// The Kafka topic the pipeline reads by default.
pub const DEFAULT_TOPIC: &str = "clickstream-events";

/// A variable's value by name: the process environment, or a map in tests.
pub trait Variables {
    /// The value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct Environment;

impl Variables for Environment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Variables for std::collections::HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.to_string())
    }
}

/// Settings of bronze-writer, silver-transformer and exporter: where the lake is, and how long a
/// request to its store may take.
#[derive(Debug, Clone)]
pub struct LakeSettings {
    /// The lake root: a directory or `s3://bucket/prefix`.
    pub lake_uri: String,
    /// How long one request to the lake's store, and its retries, may take.
    pub timeout: Duration,
}

impl LakeSettings {
    /// From [`LAKE_URI`] and [`LAKE_TIMEOUT_SECONDS`]; an error names a variable that is unset
    /// or wrong.
    pub fn from_env() -> Result<LakeSettings> {
        LakeSettings::from(&Environment)
    }

    /// From [`LAKE_URI`] and [`LAKE_TIMEOUT_SECONDS`] in `vars`.
    pub fn from(vars: &impl Variables) -> Result<LakeSettings> {
        let lake_uri = vars.get(LAKE_URI).ok_or_else(|| Error::Setting {
            name: LAKE_URI.into(),
            reason: "not set (the lake root: a directory or s3://bucket/prefix)".into(),
        })?;
        LakeSettings::at(&lake_uri, vars)
    }

    /// The lake at `lake_uri` (a CLI argument, say), with [`LAKE_TIMEOUT_SECONDS`] from `vars`.
    pub fn at(lake_uri: &str, vars: &impl Variables) -> Result<LakeSettings> {
        let seconds = whole_number(
            vars,
            LAKE_TIMEOUT_SECONDS,
            crate::lake::DEFAULT_LAKE_TIMEOUT_SECONDS,
            "seconds",
        )?;
        Ok(LakeSettings {
            lake_uri: lake_uri.to_string(),
            timeout: Duration::from_secs(seconds),
        })
    }

    /// Opens the lake.
    pub fn open(&self) -> Result<Lake> {
        Lake::open_with_timeout(&self.lake_uri, self.timeout)
    }
}

/// Settings of bronze-writer: the lake, and its options.
#[derive(Debug, Clone)]
pub struct BronzeSettings {
    /// Where the lake is.
    pub lake: LakeSettings,
    /// Limits on a landed file, and the Kafka generation.
    pub options: BronzeOptions,
}

impl BronzeSettings {
    /// From [`LAKE_URI`] and the `BRONZE_*` variables.
    pub fn from_env() -> Result<BronzeSettings> {
        BronzeSettings::from(&Environment)
    }

    /// From [`LAKE_URI`] and the `BRONZE_*` variables in `vars`.
    pub fn from(vars: &impl Variables) -> Result<BronzeSettings> {
        Ok(BronzeSettings {
            lake: LakeSettings::from(vars)?,
            options: bronze_options(vars)?,
        })
    }
}

/// bronze-writer's options from the `BRONZE_*` variables in `vars`, each defaulting when unset.
pub fn bronze_options(vars: &impl Variables) -> Result<BronzeOptions> {
    Ok(BronzeOptions {
        landed_limits: landed_limits(vars)?,
        kafka_generation: vars
            .get(BRONZE_KAFKA_GENERATION)
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty()),
    })
}

/// The limits on a landed file from [`BRONZE_MAX_FILE_BYTES`], [`BRONZE_MAX_RECORD_BYTES`] and
/// [`BRONZE_MAX_DOCUMENT_BYTES`] in `vars`, each defaulting when unset.
fn landed_limits(vars: &impl Variables) -> Result<LandedLimits> {
    let defaults = LandedLimits::default();
    Ok(LandedLimits {
        max_file_bytes: whole_number(
            vars,
            BRONZE_MAX_FILE_BYTES,
            defaults.max_file_bytes,
            "bytes",
        )?,
        max_record_bytes: whole_number(
            vars,
            BRONZE_MAX_RECORD_BYTES,
            defaults.max_record_bytes,
            "bytes",
        )?,
        max_document_bytes: whole_number(
            vars,
            BRONZE_MAX_DOCUMENT_BYTES,
            defaults.max_document_bytes,
            "bytes",
        )?,
    })
}

/// Settings of gold-transformer: the lake and the funnel.
#[derive(Debug, Clone)]
pub struct GoldSettings {
    /// Where the lake is.
    pub lake: LakeSettings,
    /// The funnel steps, in order.
    pub funnel: Vec<String>,
}

impl GoldSettings {
    /// From [`LAKE_URI`] and [`FUNNEL_STEPS`].
    pub fn from_env() -> Result<GoldSettings> {
        GoldSettings::from(&Environment)
    }

    /// From [`LAKE_URI`] and [`FUNNEL_STEPS`] in `vars`.
    pub fn from(vars: &impl Variables) -> Result<GoldSettings> {
        Ok(GoldSettings {
            lake: LakeSettings::from(vars)?,
            funnel: crate::gold::parse_funnel(vars.get(FUNNEL_STEPS).as_deref()),
        })
    }
}

/// Settings of maintenance: the lake and how long VACUUM keeps files no longer in a table.
#[derive(Debug, Clone)]
pub struct MaintenanceSettings {
    /// Where the lake is.
    pub lake: LakeSettings,
    /// Files no longer in a table are deleted once this old.
    pub vacuum_retention: chrono::Duration,
}

impl MaintenanceSettings {
    /// From [`LAKE_URI`] and [`VACUUM_RETENTION_HOURS`]; an error when the hours are not a whole
    /// number.
    pub fn from_env() -> Result<MaintenanceSettings> {
        MaintenanceSettings::from(&Environment)
    }

    /// From [`LAKE_URI`] and [`VACUUM_RETENTION_HOURS`] in `vars`.
    pub fn from(vars: &impl Variables) -> Result<MaintenanceSettings> {
        let hours: i64 = whole_number(
            vars,
            VACUUM_RETENTION_HOURS,
            crate::maintenance::DEFAULT_VACUUM_RETENTION_HOURS,
            "hours",
        )?;
        Ok(MaintenanceSettings {
            lake: LakeSettings::from(vars)?,
            vacuum_retention: chrono::Duration::hours(hours),
        })
    }
}

/// Settings of forget: the lake, the funnel (gold's figures are computed again), whether to
/// remove the rewritten files at once, and maintenance's VACUUM retention otherwise.
#[derive(Debug, Clone)]
pub struct ForgetSettings {
    /// Where the lake is.
    pub lake: LakeSettings,
    /// How an erasure runs.
    pub options: crate::erasure::ForgetOptions,
}

impl ForgetSettings {
    /// From [`LAKE_URI`], [`FUNNEL_STEPS`], [`FORGET_NOW`] and [`VACUUM_RETENTION_HOURS`].
    pub fn from_env() -> Result<ForgetSettings> {
        ForgetSettings::from(&Environment)
    }

    /// From those variables in `vars`; an error when [`FORGET_NOW`] is not `true` or `false`.
    pub fn from(vars: &impl Variables) -> Result<ForgetSettings> {
        let retention = MaintenanceSettings::from(vars)?.vacuum_retention;
        let now = match vars.get(FORGET_NOW).as_deref().map(str::trim) {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Error::Setting {
                    name: FORGET_NOW.into(),
                    reason: format!("{other:?} is not true or false"),
                });
            }
        };
        Ok(ForgetSettings {
            lake: LakeSettings::from(vars)?,
            options: crate::erasure::ForgetOptions {
                now,
                retention,
                funnel: crate::gold::parse_funnel(vars.get(FUNNEL_STEPS).as_deref()),
            },
        })
    }
}

/// The whole number in variable `name` of `vars` (counting `unit`), or `default` when it is
/// unset; a clear error when it is not a whole number.
pub(crate) fn whole_number<T>(
    vars: &impl Variables,
    name: &str,
    default: T,
    unit: &str,
) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match vars.get(name) {
        Some(v) => v.trim().parse().map_err(|e| Error::Setting {
            name: name.into(),
            reason: format!("{v:?} is not a whole number of {unit}: {e}"),
        }),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn each_function_reads_its_variables_with_defaults() {
        let vars = HashMap::from([(LAKE_URI, "s3://b/p")]);
        let gold = GoldSettings::from(&vars).unwrap();
        assert_eq!(gold.lake.lake_uri, "s3://b/p");
        assert_eq!(gold.funnel, crate::gold::parse_funnel(None));
        let maintenance = MaintenanceSettings::from(&vars).unwrap();
        assert_eq!(maintenance.vacuum_retention, chrono::Duration::hours(168));
        let bronze = BronzeSettings::from(&vars).unwrap();
        assert_eq!(bronze.options, BronzeOptions::default());

        let vars = HashMap::from([
            (LAKE_URI, "lake"),
            (FUNNEL_STEPS, "a, b"),
            (VACUUM_RETENTION_HOURS, " 24 "),
        ]);
        assert_eq!(GoldSettings::from(&vars).unwrap().funnel, ["a", "b"]);
        let maintenance = MaintenanceSettings::from(&vars).unwrap();
        assert_eq!(maintenance.vacuum_retention, chrono::Duration::hours(24));

        let vars = HashMap::from([
            (LAKE_URI, "lake"),
            (BRONZE_MAX_RECORD_BYTES, "4096"),
            (BRONZE_KAFKA_GENERATION, " 2026-12 "),
        ]);
        let options = BronzeSettings::from(&vars).unwrap().options;
        assert_eq!(options.landed_limits.max_record_bytes, 4096);
        let defaults = LandedLimits::default();
        assert_eq!(
            options.landed_limits.max_file_bytes,
            defaults.max_file_bytes
        );
        assert_eq!(options.kafka_generation.as_deref(), Some("2026-12"));
    }

    #[test]
    fn a_missing_or_malformed_variable_is_named_in_the_error() {
        let none: HashMap<&str, &str> = HashMap::new();
        let e = LakeSettings::from(&none).unwrap_err().to_string();
        assert!(e.contains(LAKE_URI), "{e}");
        let vars = HashMap::from([(LAKE_URI, "lake"), (VACUUM_RETENTION_HOURS, "a week")]);
        let e = MaintenanceSettings::from(&vars).unwrap_err().to_string();
        assert!(
            e.contains("setting VACUUM_RETENTION_HOURS: \"a week\" is not a whole number of hours"),
            "{e}"
        );
    }
}
