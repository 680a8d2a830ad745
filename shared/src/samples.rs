//! The sample Lambda events of `events/`, for the function tests and for trying the handlers.

use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::functions::{self, BronzeTrigger};
use crate::lake::Lake;

/// The `events/` directory of this repository.
pub fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../events"))
}

/// Reads and parses `events/NAME`.
pub fn load<T: DeserializeOwned>(name: &str) -> Result<T> {
    let path = dir().join(name);
    let bytes =
        std::fs::read(&path).map_err(|e| Error::Trigger(format!("{}: {e}", path.display())))?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// How far [`feed`] takes the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Bronze,
    Silver,
    Gold,
}

/// Runs the samples through the handlers up to `through`: `kafka.json` into bronze, then the
/// bronze commit sample into silver, then the silver commit sample into gold.
pub async fn feed(lake: &Lake, through: Stage) -> Result<()> {
    let kafka = BronzeTrigger::from_json(load("kafka.json")?)?;
    functions::bronze_writer(lake, &kafka).await?;
    if through >= Stage::Silver {
        functions::silver_transformer(lake, &load("s3-bronze-commit.json")?).await?;
    }
    if through >= Stage::Gold {
        let funnel = functions::parse_funnel(None);
        functions::gold_transformer(lake, &load("s3-silver-commit.json")?, &funnel).await?;
    }
    Ok(())
}
