//! Clickstream pipeline core.
//!
//! `producer -> Kafka -> bronze -> silver -> gold -> exports`: each stage is a plain function over
//! Arrow batches and Delta tables ([`bronze`], [`silver`], [`gold`], [`export`]); [`functions`]
//! holds the handlers the Lambda binaries and the embedded [`pipeline`] call.

#![deny(missing_docs)]

pub mod appender;
pub mod bronze;
pub mod erasure;
pub mod error;
pub mod event;
#[cfg(feature = "duckdb")]
pub mod export;
pub mod functions;
pub mod gold;
pub mod health;
pub mod lake;
pub mod maintenance;
pub mod pipeline;
pub mod rows;
pub mod s3;
pub mod schema;
pub mod settings;
pub mod silver;
pub mod telemetry;
pub mod trigger;

pub use error::{Error, Result};
pub use lake::{Lake, Table};
