//! The metrics document a function writes after an invocation: CloudWatch's Embedded Metric
//! Format, with the namespace and dimension chosen once and the outcome's counts. Its own test
//! binary: the recorder is installed once per process.

use std::collections::BTreeMap;

use clickstream::lake::Metered;
use clickstream::silver::SilverOutcome;
use clickstream::telemetry::{NAMESPACE, REASON, REQUEST, STAGE, emf, metric};
use object_store::{ObjectStore, ObjectStoreExt, path::Path};
use serde_json::Value;

#[tokio::test]
async fn an_invocation_writes_one_emf_document_with_its_counts() {
    emf::install("silver-transformer").unwrap();
    let outcome = SilverOutcome {
        input: 10,
        valid: 6,
        quarantined: 2,
        duplicates: 1,
        suppressed: 1,
        quarantined_by_reason: BTreeMap::from([("not_json".to_string(), 2)]),
        late: 2,
        bronze_behind: 4,
        silver_version: Some(7),
        retries: 3,
        ..SilverOutcome::default()
    };
    clickstream_lambda::record_invocation(&Ok(vec![outcome]), 42);
    // The lake's store traffic, as an S3 lake's client counts it.
    store_traffic().await;
    let mut written = Vec::new();
    emf::flush(&mut written);

    let documents: Vec<Value> = String::from_utf8(written)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Each document: the EMF envelope, the Stage dimension, and the values at the top level.
    let mut values = BTreeMap::new();
    for d in &documents {
        let directive = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE, "{d}");
        assert!(d["_aws"]["Timestamp"].as_u64().is_some(), "{d}");
        assert_eq!(d[STAGE], "silver-transformer", "{d}");
        let dimensions = directive["Dimensions"][0].as_array().unwrap();
        assert!(dimensions.iter().any(|x| x == STAGE), "{d}");
        for m in directive["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap().to_string();
            let reason = d.get(REASON).and_then(Value::as_str).unwrap_or_default();
            values.insert(
                (name, reason.to_string()),
                d[m["Name"].as_str().unwrap()].clone(),
            );
            if m["Name"] == metric::HANDLER_DURATION {
                assert_eq!(m["Unit"], "Milliseconds", "{d}");
            }
        }
    }
    let value = |name: &str, reason: &str| values[&(name.to_string(), reason.to_string())].clone();
    assert_eq!(value(metric::RECORDS_IN, ""), 10);
    assert_eq!(value(metric::RECORDS_OUT, ""), 6);
    assert_eq!(value(metric::DUPLICATES, ""), 1);
    assert_eq!(value(metric::SUPPRESSED, ""), 1);
    assert_eq!(value(metric::LOST_RACES, ""), 3);
    assert_eq!(value(metric::QUARANTINED, ""), 2);
    assert_eq!(value(metric::QUARANTINED_BY_REASON, "not_json"), 2);
    assert_eq!(value(metric::LATE_EVENTS, ""), 2);
    // Silver's and quarantine's commits, and the three races lost.
    assert_eq!(value(metric::COMMIT_ATTEMPTS, ""), 5);
    assert_eq!(value(metric::COMMITS_BEHIND, ""), serde_json::json!([4.0]));
    assert_eq!(value(metric::BYTES_WRITTEN, ""), 5);
    assert_eq!(value(metric::BYTES_READ, ""), 5 + 2);
    let requests: BTreeMap<String, Value> = documents
        .iter()
        .filter_map(|d| {
            Some((
                d.get(REQUEST)?.as_str()?.to_string(),
                d[metric::STORE_REQUESTS].clone(),
            ))
        })
        .collect();
    assert_eq!(
        requests,
        BTreeMap::from([
            ("PUT".to_string(), 1.into()),
            ("GET".to_string(), 2.into()),
            ("HEAD".to_string(), 1.into()),
            ("LIST".to_string(), 1.into()),
            ("DELETE".to_string(), 1.into()),
        ])
    );
    assert_eq!(
        value(metric::HANDLER_DURATION, ""),
        serde_json::json!([42.0])
    );

    // The next invocation's document holds only what it counted.
    let mut again = Vec::new();
    clickstream_lambda::record_invocation::<Vec<SilverOutcome>>(&Ok(vec![]), 5);
    emf::flush(&mut again);
    let text = String::from_utf8(again).unwrap();
    assert!(!text.contains(metric::QUARANTINED), "{text}");
    assert!(!text.contains(metric::STORE_REQUESTS), "{text}");
    // A level read once is not written again by the next invocation.
    assert!(!text.contains(metric::COMMITS_BEHIND), "{text}");
    assert!(text.contains(metric::HANDLER_DURATION), "{text}");
}

/// One PUT of 5 bytes, a GET of it, a ranged GET of 2, a HEAD, a LIST and a DELETE, through a
/// metered store.
async fn store_traffic() {
    use futures::TryStreamExt;
    let store = Metered::new(object_store::memory::InMemory::new());
    let path = Path::from("bronze/events/part-0.parquet");
    store.put(&path, "hello".into()).await.unwrap();
    assert_eq!(
        store.get(&path).await.unwrap().bytes().await.unwrap(),
        "hello"
    );
    assert_eq!(store.get_range(&path, 1..3).await.unwrap(), "el");
    store.head(&path).await.unwrap();
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    store.delete(&path).await.unwrap();
}
