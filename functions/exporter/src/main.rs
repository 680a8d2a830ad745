//! exporter: on schedule, gold -> `exports/` (DuckDB file, CSV, Parquet).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use clickstream::Lake;
use clickstream::functions;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

async fn handler(lake: &Lake, event: LambdaEvent<EventBridgeEvent>) -> Result<Value, Error> {
    Ok(functions::response(
        &functions::exporter(lake, &event.payload).await?,
    ))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    clickstream::tune_allocator();
    clickstream::telemetry::init("info");
    let lake = functions::lake_from_env()?;
    lambda_runtime::run(service_fn(|event| handler(&lake, event))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream::samples::{self, Stage};

    #[tokio::test]
    async fn schedule_sample_exports_every_gold_table() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        samples::feed(&lake, Stage::Gold).await.unwrap();

        let out = handler(
            &lake,
            LambdaEvent::new(
                samples::load("eventbridge-schedule.json").unwrap(),
                Default::default(),
            ),
        )
        .await
        .unwrap();
        assert_eq!(out["rows"]["sessions"], 2);
        let db = duckdb::Connection::open(dir.path().join("exports/clickstream.duckdb")).unwrap();
        let sessions: i64 = db
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sessions, 2);
        for table in ["sessions", "daily_metrics", "funnel_daily", "page_daily"] {
            assert!(dir.path().join(format!("exports/{table}.csv")).exists());
            assert!(dir.path().join(format!("exports/{table}.parquet")).exists());
        }
    }
}
