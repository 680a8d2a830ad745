//! maintenance: on schedule, OPTIMIZE + checkpoint + VACUUM of every lake table.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use clickstream::Lake;
use clickstream::{functions, maintenance};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

async fn handler(
    lake: &Lake,
    retention: chrono::Duration,
    _event: LambdaEvent<EventBridgeEvent>,
) -> Result<Value, Error> {
    Ok(functions::response(
        &maintenance::maintain(lake, retention).await?,
    ))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    clickstream::tune_allocator();
    clickstream::telemetry::init("info");
    let lake = functions::lake_from_env()?;
    let retention = maintenance::retention_from_env()?;
    lambda_runtime::run(service_fn(|event| handler(&lake, retention, event))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream::samples::{self, Stage};

    #[tokio::test]
    async fn schedule_sample_maintains_every_table() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        samples::feed(&lake, Stage::Bronze).await.unwrap();
        let out = handler(
            &lake,
            chrono::Duration::hours(168),
            LambdaEvent::new(
                samples::load("eventbridge-schedule.json").unwrap(),
                Default::default(),
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            out.as_array().unwrap().len(),
            clickstream::lake::Table::ALL.len()
        );
        assert_eq!(out[0]["table"], "bronze/events");
        assert_eq!(out[0]["files_after"], 1);
    }
}
