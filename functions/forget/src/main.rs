//! forget: an erasure request object under `requests/forget/` -> the person erased from every
//! table, the exports written again, and the request recorded in `audit/erasures`.

use aws_lambda_events::event::s3::S3Event;
use clickstream::erasure::{self, ErasureReport, ForgetOptions, Request};
use clickstream::{Error, Lake, Result, functions, settings};

async fn handler(
    lake: &Lake,
    options: &ForgetOptions,
    event: S3Event,
) -> Result<Vec<ErasureReport>> {
    let mut reports = Vec::new();
    for key in functions::erasure_requests(lake, &event)? {
        let request = match Request::read(lake, &key).await {
            Ok(request) => request,
            // A redelivered notification of a request that completed (its object goes then).
            Err(Error::ObjectStore(object_store::Error::NotFound { .. })) => {
                tracing::info!(
                    key,
                    "the request object is gone: the request completed before"
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        let report = erasure::forget(lake, &request, options, async |lake: &Lake| {
            clickstream_report::exporter(lake).await.map(drop)
        })
        .await?;
        if !report.landed_files_pending.is_empty() {
            // Bronze has not read a landed file of the person yet: Lambda retries the
            // notification later, and the request finishes then.
            return Err(Error::Erasure {
                reason: format!(
                    "request {}: {} landed file(s) not yet in bronze",
                    request.id,
                    report.landed_files_pending.len()
                ),
            });
        }
        reports.push(report);
    }
    Ok(reports)
}

#[global_allocator]
static ALLOCATOR: clickstream_lambda::Allocator = clickstream_lambda::Allocator;

#[tokio::main]
async fn main() -> Result<(), clickstream_lambda::RuntimeError> {
    clickstream_lambda::init();
    let settings = settings::ForgetSettings::from_env()?;
    let lake = settings.lake.open()?;
    clickstream_lambda::prepare_at_init(&lake, clickstream_lambda::nothing_to_prepare).await;
    clickstream_lambda::serve(|event| handler(&lake, &settings.options, event)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream::trigger::s3_put_event;
    use clickstream_testkit::samples::{self, Stage};

    fn options() -> ForgetOptions {
        ForgetOptions {
            now: true,
            retention: chrono::Duration::hours(168),
            funnel: clickstream::gold::parse_funnel(None),
        }
    }

    #[tokio::test]
    async fn a_request_object_erases_the_person_and_rewrites_the_exports() {
        let (dir, lake) = samples::fed_lake(Stage::Gold).await;
        let sessions_csv = dir.path().join("exports/sessions.csv");
        clickstream_report::exporter(&lake).await.unwrap();
        let before = std::fs::read_to_string(&sessions_csv).unwrap();
        // The sample Kafka batch's one logged-in user.
        let user = "user-7";
        assert!(before.contains(user), "the sample lake holds {user}");
        let request = Request::new("sample-request", user).unwrap();
        request.put(&lake).await.unwrap();
        let event = s3_put_event("local", &request.key(), 30, "\"e\"", chrono_now());

        let reports = handler(&lake, &options(), event.clone()).await.unwrap();
        assert_eq!(reports.len(), 1);
        assert!(reports[0].completed_at.is_some());
        let after = std::fs::read_to_string(&sessions_csv).unwrap();
        assert!(
            !after.contains(user),
            "the exports are written again without {user}"
        );
        // The notification again: the request completed, its object is gone, nothing happens.
        assert!(handler(&lake, &options(), event).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_object_outside_the_requests_is_refused() {
        let (_dir, lake) = samples::fed_lake(Stage::Gold).await;
        let event = s3_put_event("local", "landing/x.jsonl", 1, "\"e\"", chrono_now());
        let err = handler(&lake, &options(), event).await.unwrap_err();
        assert!(!err.is_retryable(), "{err}");
    }

    fn chrono_now() -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}
