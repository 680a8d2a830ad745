//! The trigger events of the functions, built and read exactly as AWS sends them.

use aws_lambda_events::event::kafka::KafkaEvent;
use aws_lambda_events::event::s3::S3Event;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Result, TriggerError};

/// One object named by an S3 notification, with its key URL-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// The bucket.
    pub bucket: String,
    /// The object's key, URL-decoded.
    pub key: String,
    /// Size in bytes, when the notification says.
    pub size: Option<i64>,
    /// The object's ETag, when the notification says.
    pub etag: Option<String>,
}

/// What a schedule sends the exporter and maintenance: the input that `infra/schedules.tf` gives
/// each EventBridge Scheduler target, which the Scheduler passes to the function as it is, e.g.
/// `{"source": "clickstream.scheduler", "function": "exporter"}`. An EventBridge rule's event
/// (`{"source": "aws.events", "detail-type": ...}`) decodes too; nothing else of it is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledRun {
    /// Who scheduled the run.
    pub source: String,
    /// The function the schedule is meant for, when the payload names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
}

impl ScheduledRun {
    /// The payload of the project's own schedules for `function`.
    pub fn for_function(function: &str) -> ScheduledRun {
        ScheduledRun {
            source: "clickstream.scheduler".into(),
            function: Some(function.into()),
        }
    }

    /// Fails (permanently) when the payload names another function than `function`: a schedule
    /// wired to the wrong target.
    pub fn check_target(&self, function: &str) -> Result<()> {
        match &self.function {
            Some(named) if named != function => Err(TriggerError::WrongTarget {
                named: named.clone(),
                function: function.to_string(),
            }
            .into()),
            _ => Ok(()),
        }
    }
}

/// URL-encodes an object key as S3 notifications do (spaces become `+`).
pub fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|part| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>())
        .collect::<Vec<_>>()
        .join("/")
}

/// Decodes an S3 notification key (`+` is a space, then percent-decoding).
pub fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// An `ObjectCreated:Put` notification for one object, as S3 delivers it to Lambda.
pub fn s3_put_event(bucket: &str, key: &str, size: u64, etag: &str, at: DateTime<Utc>) -> S3Event {
    let value = json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "eventName": "ObjectCreated:Put",
            "userIdentity": { "principalId": "clickstream" },
            "requestParameters": { "sourceIPAddress": "127.0.0.1" },
            "responseElements": {
                "x-amz-request-id": format!("{:016X}", at.timestamp_micros()),
                "x-amz-id-2": "clickstream-local"
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "clickstream",
                "bucket": {
                    "name": bucket,
                    "ownerIdentity": { "principalId": "clickstream" },
                    "arn": format!("arn:aws:s3:::{bucket}")
                },
                "object": {
                    "key": encode_key(key),
                    "size": size,
                    "eTag": etag,
                    "sequencer": format!("{:016X}", at.timestamp_micros())
                }
            }
        }]
    });
    serde_json::from_value(value).expect("static S3 event shape")
}

/// The objects an S3 notification names.
pub fn objects(event: &S3Event) -> Result<Vec<ObjectRef>> {
    event
        .records
        .iter()
        .map(|r| {
            let key = r.s3.object.key.as_deref().ok_or(TriggerError::Shape {
                expected: "s3.object.key in every S3 record",
            })?;
            Ok(ObjectRef {
                bucket: r.s3.bucket.name.clone().unwrap_or_default(),
                key: decode_key(key),
                size: r.s3.object.size,
                etag: r.s3.object.e_tag.clone(),
            })
        })
        .collect()
}

/// One Kafka message as handed to [`kafka_event`].
#[derive(Debug, Clone, Default)]
pub struct KafkaMessage {
    /// The partition.
    pub partition: i32,
    /// The offset in the partition.
    pub offset: i64,
    /// The message timestamp, ms since the epoch.
    pub timestamp_ms: i64,
    /// The timestamp is the broker's append time rather than the producer's create time.
    pub log_append_time: bool,
    /// The message key.
    pub key: Option<Vec<u8>>,
    /// The message value.
    pub value: Option<Vec<u8>>,
    /// The message headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A Kafka event source mapping batch, as AWS builds it: records grouped under
/// "topic-partition", base64 key and value, headers as `[{"name": [bytes]}]`.
pub fn kafka_event(bootstrap_servers: &str, topic: &str, messages: &[KafkaMessage]) -> KafkaEvent {
    use aws_lambda_events::encodings::MillisecondTimestamp;
    use aws_lambda_events::event::kafka::KafkaRecord;
    let mut event = KafkaEvent::default();
    event.event_source = Some("SelfManagedKafka".into());
    event.bootstrap_servers = Some(bootstrap_servers.into());
    for m in messages {
        let mut record = KafkaRecord::default();
        record.topic = Some(topic.into());
        record.partition = m.partition.into();
        record.offset = m.offset;
        record.timestamp = MillisecondTimestamp(
            DateTime::from_timestamp_millis(m.timestamp_ms).unwrap_or_default(),
        );
        record.timestamp_type = Some(
            if m.log_append_time {
                "LOG_APPEND_TIME"
            } else {
                "CREATE_TIME"
            }
            .into(),
        );
        record.key = m.key.as_ref().map(|k| BASE64.encode(k));
        record.value = m.value.as_ref().map(|v| BASE64.encode(v));
        record.headers = m
            .headers
            .iter()
            .map(|(name, value)| {
                std::collections::HashMap::from([(
                    name.clone(),
                    value.iter().map(|b| *b as i8).collect(),
                )])
            })
            .collect();
        event
            .records
            .entry(format!("{topic}-{}", m.partition))
            .or_default()
            .push(record);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_url_encoding() {
        let key = "landing/2026 11/events (1)+ü.jsonl";
        let encoded = encode_key(key);
        assert_eq!(encoded, "landing/2026+11/events+%281%29%2B%C3%BC.jsonl");
        assert_eq!(decode_key(&encoded), key);
    }

    #[test]
    fn s3_event_names_the_object() {
        let ev = s3_put_event("lake", "landing/a b.jsonl", 12, "abc", Utc::now());
        let objs = objects(&ev).unwrap();
        assert_eq!(objs[0].key, "landing/a b.jsonl");
        assert_eq!(objs[0].bucket, "lake");
        assert_eq!(objs[0].size, Some(12));
    }

    #[test]
    fn kafka_event_groups_by_topic_partition() {
        let msg = |p, o| KafkaMessage {
            partition: p,
            offset: o,
            timestamp_ms: 1,
            key: None,
            value: Some(b"{}".to_vec()),
            ..Default::default()
        };
        let ev = kafka_event("b:9092", "t", &[msg(0, 1), msg(1, 5), msg(0, 2)]);
        assert_eq!(ev.records["t-0"].len(), 2);
        assert_eq!(ev.records["t-1"][0].offset, 5);
        assert_eq!(ev.records["t-0"][0].value.as_deref(), Some("e30="));
    }

    #[test]
    fn kafka_headers_and_timestamp_type_are_as_aws_sends_them() {
        let msg = KafkaMessage {
            log_append_time: true,
            headers: vec![("trace".into(), b"ab".to_vec())],
            ..Default::default()
        };
        let ev = serde_json::to_value(kafka_event("b:9092", "t", &[msg])).unwrap();
        let record = &ev["records"]["t-0"][0];
        assert_eq!(record["timestampType"], "LOG_APPEND_TIME");
        assert_eq!(record["headers"], json!([{ "trace": [97, 98] }]));
    }
}
