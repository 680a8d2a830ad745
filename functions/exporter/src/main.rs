//! exporter: on schedule, gold -> `exports/` (DuckDB file, CSV, Parquet).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use clickstream::Lake;
use clickstream::functions;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

async fn handler(lake: &Lake, event: LambdaEvent<EventBridgeEvent>) -> Result<Value, Error> {
    Ok(functions::response(&functions::exporter(lake, &event.payload).await?))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    clickstream::telemetry::init("info");
    let lake = functions::lake_from_env()?;
    lambda_runtime::run(service_fn(|event| handler(&lake, event))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<T: serde::de::DeserializeOwned>(name: &str) -> T {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn schedule_sample_exports_every_gold_table() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let kafka = functions::BronzeTrigger::from_json(sample("kafka.json")).unwrap();
        functions::bronze_writer(&lake, &kafka).await.unwrap();
        functions::silver_transformer(&lake, &sample("s3-bronze-commit.json")).await.unwrap();
        functions::gold_transformer(&lake, &sample("s3-silver-commit.json"), &functions::parse_funnel(None))
            .await
            .unwrap();

        let out = handler(&lake, LambdaEvent::new(sample("eventbridge-schedule.json"), Default::default()))
            .await
            .unwrap();
        assert_eq!(out["rows"]["sessions"], 2);
        let db = duckdb::Connection::open(dir.path().join("exports/clickstream.duckdb")).unwrap();
        let sessions: i64 = db.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0)).unwrap();
        assert_eq!(sessions, 2);
        for table in ["sessions", "daily_metrics", "funnel_daily", "page_daily"] {
            assert!(dir.path().join(format!("exports/{table}.csv")).exists());
            assert!(dir.path().join(format!("exports/{table}.parquet")).exists());
        }
    }
}
