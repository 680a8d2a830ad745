//! The triggers as Terraform deployed them, read from the state of an apply of `infra/` (the local
//! stack applies it to an AWS API emulator): the bucket's notifications with their filters, the
//! Kafka event source mapping, the schedules with their exact input, and each function's
//! asynchronous retries. The bridge delivers what this says, so the local stack runs the
//! deployment's wiring instead of a copy of it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// One S3 notification of the lake bucket: objects created under `prefix` ending in `suffix`
/// invoke `function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The function's crate name (the local stack's function name).
    pub function: String,
    /// Key prefix in the bucket (the lake prefix included).
    pub prefix: String,
    /// Key suffix, "" for any.
    pub suffix: String,
}

/// The Kafka event source mapping of bronze-writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaMapping {
    pub function: String,
    /// The topic (infra/ maps one).
    pub topic: String,
    pub consumer_group: String,
    pub batch_size: usize,
    pub batching_window: Duration,
}

/// An EventBridge Scheduler schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub function: String,
    /// As written in Terraform, e.g. `rate(15 minutes)`.
    pub expression: String,
    /// The interval of a `rate(...)` expression.
    pub every: Duration,
    /// The target's input, exactly as the Scheduler passes it to the function.
    pub input: Value,
    /// Retries of a failed run before it goes to the dead-letter queue.
    pub retries: u32,
    /// The dead-letter queue of failed runs.
    pub dead_letter: Option<String>,
}

/// What happens to a failed asynchronous invocation of a function (S3 notifications): retried
/// `retries` times, then sent to `dead_letter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncRetries {
    pub retries: u32,
    pub dead_letter: Option<String>,
}

/// Everything that invokes the functions, as deployed.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// The `lake_uri` output: the lake the deployed functions work on.
    pub lake_uri: String,
    pub notifications: Vec<Notification>,
    pub kafka: Option<KafkaMapping>,
    pub schedules: Vec<Schedule>,
    /// Per function; a function without an entry gets AWS's default (two retries, no queue).
    pub async_retries: BTreeMap<String, AsyncRetries>,
    /// Each function's memory in MB (what Lambda bills duration by).
    pub memory_mb: BTreeMap<String, u64>,
}

impl Wiring {
    /// Reads a Terraform state file (`terraform.tfstate`, format 4).
    pub fn from_state_file(path: &Path) -> Result<Wiring> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the deployment's state {}", path.display()))?;
        let state: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a Terraform state file", path.display()))?;
        Wiring::from_state(&state)
            .with_context(|| format!("reading the wiring of {}", path.display()))
    }

    /// The wiring in a parsed Terraform state.
    pub fn from_state(state: &Value) -> Result<Wiring> {
        if state["version"] != 4 {
            bail!("Terraform state format {} (expected 4)", state["version"]);
        }
        let resources = state["resources"]
            .as_array()
            .ok_or_else(|| anyhow!("no resources"))?;
        let deployed = Deployed::new(resources)?;
        Ok(Wiring {
            lake_uri: text(
                &state["outputs"]["lake_uri"]["value"],
                "the lake_uri output",
            )?,
            notifications: deployed.notifications()?,
            kafka: deployed.kafka()?,
            schedules: deployed.schedules()?,
            async_retries: deployed.async_retries()?,
            memory_mb: deployed.memory_mb()?,
        })
    }

    /// How failed asynchronous invocations of `function` are retried.
    pub fn retries_of(&self, function: &str) -> AsyncRetries {
        self.async_retries
            .get(function)
            .cloned()
            .unwrap_or(AsyncRetries {
                retries: 2,
                dead_letter: None,
            })
    }
}

/// The strings of a list attribute (none when it is missing).
fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn text(v: &Value, what: &str) -> Result<String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{what} is missing from the state"))
}

fn number(v: &Value, what: &str) -> Result<u64> {
    v.as_u64()
        .ok_or_else(|| anyhow!("{what} is missing from the state"))
}

/// The interval of an EventBridge `rate(N unit)` expression; `cron(...)` and `at(...)` are not
/// run by the local stack.
pub fn rate(expression: &str) -> Result<Duration> {
    let inner = expression
        .strip_prefix("rate(")
        .and_then(|e| e.strip_suffix(')'))
        .ok_or_else(|| {
            anyhow!("the local stack runs rate(...) schedules only, not {expression}")
        })?;
    let (n, unit) = inner
        .trim()
        .split_once(' ')
        .ok_or_else(|| anyhow!("{expression}: expected rate(N unit)"))?;
    let n: u64 = n
        .parse()
        .with_context(|| format!("{expression}: {n} is not a whole number"))?;
    let seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        other => bail!("{expression}: unit {other} (EventBridge takes minutes, hours or days)"),
    };
    if n == 0 {
        bail!("{expression}: the rate must be positive");
    }
    Ok(Duration::from_secs(n * seconds))
}

/// The managed resources of a Terraform state, with its functions known by crate name.
struct Deployed<'a> {
    resources: &'a [Value],
    /// Function ARNs and names -> crate names (each function's `for_each` key).
    functions: BTreeMap<String, String>,
}

impl<'a> Deployed<'a> {
    fn new(resources: &'a [Value]) -> Result<Deployed<'a>> {
        let mut deployed = Deployed {
            resources,
            functions: BTreeMap::new(),
        };
        for (key, attributes) in deployed.keyed_instances("aws_lambda_function") {
            let key = text(key, "a function's key")?;
            for id in ["arn", "function_name"] {
                deployed
                    .functions
                    .insert(text(&attributes[id], id)?, key.clone());
            }
        }
        Ok(deployed)
    }

    /// Each managed instance of a resource type (its `index_key`, its `attributes`).
    fn keyed_instances(
        &self,
        ty: &'static str,
    ) -> impl Iterator<Item = (&'a Value, &'a Value)> + use<'a> {
        self.resources
            .iter()
            .filter(move |r| r["mode"] == "managed" && r["type"] == ty)
            .flat_map(|r| r["instances"].as_array().into_iter().flatten())
            .map(|i| (&i["index_key"], &i["attributes"]))
    }

    /// The attributes of each managed instance of a resource type.
    fn instances(&self, ty: &'static str) -> impl Iterator<Item = &'a Value> + use<'a> {
        self.keyed_instances(ty).map(|(_, attributes)| attributes)
    }

    /// The crate name of a function given by ARN or name.
    fn function(&self, arn_or_name: &Value) -> Result<String> {
        let id = text(arn_or_name, "a function")?;
        self.functions
            .get(&id)
            .cloned()
            .ok_or_else(|| anyhow!("{id} is not a function of this deployment"))
    }

    /// The bucket's notifications of created objects.
    fn notifications(&self) -> Result<Vec<Notification>> {
        let mut notifications = Vec::new();
        for n in self.instances("aws_s3_bucket_notification") {
            for f in n["lambda_function"].as_array().into_iter().flatten() {
                if !strings(&f["events"]).any(|e| e.starts_with("s3:ObjectCreated:")) {
                    continue;
                }
                notifications.push(Notification {
                    function: self.function(&f["lambda_function_arn"])?,
                    prefix: f["filter_prefix"].as_str().unwrap_or_default().to_string(),
                    suffix: f["filter_suffix"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(notifications)
    }

    /// The Kafka event source mapping, if there is one.
    fn kafka(&self) -> Result<Option<KafkaMapping>> {
        let mut kafka = None;
        for m in self.instances("aws_lambda_event_source_mapping") {
            let group = [
                "amazon_managed_kafka_event_source_config",
                "self_managed_kafka_event_source_config",
            ]
            .iter()
            .find_map(|block| m[block][0]["consumer_group_id"].as_str())
            .ok_or_else(|| anyhow!("the Kafka mapping has no consumer group"))?;
            let topics: Vec<&str> = strings(&m["topics"]).collect();
            let [topic] = topics[..] else {
                bail!("the Kafka mapping has topics {topics:?}; the local stack maps one");
            };
            kafka = Some(KafkaMapping {
                function: self.function(&m["function_name"])?,
                topic: topic.to_string(),
                consumer_group: group.to_string(),
                batch_size: number(&m["batch_size"], "batch_size")? as usize,
                batching_window: Duration::from_secs(number(
                    &m["maximum_batching_window_in_seconds"],
                    "maximum_batching_window_in_seconds",
                )?),
            });
        }
        Ok(kafka)
    }

    /// The schedules, with their exact input.
    fn schedules(&self) -> Result<Vec<Schedule>> {
        let mut schedules = Vec::new();
        for s in self.instances("aws_scheduler_schedule") {
            let target = &s["target"][0];
            let expression = text(&s["schedule_expression"], "schedule_expression")?;
            let input = text(&target["input"], "the schedule's input")?;
            schedules.push(Schedule {
                function: self.function(&target["arn"])?,
                every: rate(&expression)?,
                expression,
                input: serde_json::from_str(&input)
                    .with_context(|| format!("the schedule's input {input} is not JSON"))?,
                retries: number(
                    &target["retry_policy"][0]["maximum_retry_attempts"],
                    "retries",
                )? as u32,
                dead_letter: target["dead_letter_config"][0]["arn"]
                    .as_str()
                    .map(str::to_string),
            });
        }
        Ok(schedules)
    }

    /// Each function's memory in MB.
    fn memory_mb(&self) -> Result<BTreeMap<String, u64>> {
        let mut memory = BTreeMap::new();
        for f in self.instances("aws_lambda_function") {
            memory.insert(
                self.function(&f["function_name"])?,
                number(&f["memory_size"], "memory_size")?,
            );
        }
        Ok(memory)
    }

    /// How each function's failed asynchronous invocations are retried.
    fn async_retries(&self) -> Result<BTreeMap<String, AsyncRetries>> {
        let mut async_retries = BTreeMap::new();
        for c in self.instances("aws_lambda_function_event_invoke_config") {
            async_retries.insert(
                self.function(&c["function_name"])?,
                AsyncRetries {
                    retries: number(&c["maximum_retry_attempts"], "maximum_retry_attempts")? as u32,
                    dead_letter: c["destination_config"][0]["on_failure"][0]["destination"]
                        .as_str()
                        .map(str::to_string),
                },
            );
        }
        Ok(async_retries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_eventbridge_rates() {
        assert_eq!(rate("rate(15 minutes)").unwrap(), Duration::from_secs(900));
        assert_eq!(rate("rate(1 hour)").unwrap(), Duration::from_secs(3600));
        assert!(rate("rate(30 seconds)").is_err());
        assert!(rate("cron(0 * * * ? *)").is_err());
        assert!(rate("rate(0 minutes)").is_err());
    }

    #[test]
    fn a_state_without_the_lake_output_is_refused() {
        let err =
            Wiring::from_state(&serde_json::json!({"version": 4, "resources": []})).unwrap_err();
        assert!(err.to_string().contains("lake_uri"), "{err:#}");
    }
}
