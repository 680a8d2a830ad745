//! maintenance: on schedule, OPTIMIZE + checkpoint + VACUUM of every lake table.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use clickstream::Lake;
use clickstream::{functions, maintenance};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

async fn handler(lake: &Lake, retention: chrono::Duration, _event: LambdaEvent<EventBridgeEvent>) -> Result<Value, Error> {
    Ok(functions::response(&maintenance::maintain(lake, retention).await?))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    clickstream::telemetry::init("info");
    let lake = functions::lake_from_env()?;
    let retention = maintenance::retention_from_env()?;
    lambda_runtime::run(service_fn(|event| handler(&lake, retention, event))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<T: serde::de::DeserializeOwned>(name: &str) -> T {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn schedule_sample_maintains_every_table() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let kafka = functions::BronzeTrigger::from_json(sample("kafka.json")).unwrap();
        functions::bronze_writer(&lake, &kafka).await.unwrap();
        let out = handler(&lake, chrono::Duration::hours(168), LambdaEvent::new(sample("eventbridge-schedule.json"), Default::default()))
            .await
            .unwrap();
        assert_eq!(out.as_array().unwrap().len(), 7);
        assert_eq!(out[0]["table"], "bronze/events");
        assert_eq!(out[0]["files_after"], 1);
    }
}
