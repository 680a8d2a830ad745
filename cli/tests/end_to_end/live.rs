//! `clickstream generate --live` against a real broker: every record the command says was
//! acknowledged is in the topic, and the events are stamped with the wall clock of the run, bar
//! the late ones the simulator sends on purpose.

use crate::stack::{Broker, read_partition};

#[test]
fn live_traffic_is_stamped_with_the_wall_clock_and_all_acknowledged() {
    let Some(broker) = Broker::start("the live-simulator test") else {
        return;
    };
    broker.create_topic("live", 1);
    let started = chrono::Utc::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args(["generate", "--brokers", &broker.brokers, "--topic", "live"])
        .args(["--rate", "200", "--duration", "5"])
        .output()
        .unwrap();
    let ended = chrono::Utc::now();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("live traffic"),
        "live is the default: {stderr}"
    );
    let acknowledged: usize = stderr
        .lines()
        .find_map(|l| l.split(" records acknowledged").next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in {stderr}"));
    assert!(
        (700..=1300).contains(&acknowledged),
        "5 s at 200 events/s gave {acknowledged}"
    );

    let messages = read_partition(&broker.brokers, "live", 0, acknowledged);
    // The broker stamps a whole batch with one time, so the check is against the run's own clock:
    // the events are stamped with times spread over the run as it happened, bar the late ones the
    // simulator sends on purpose (about 1%).
    let (from, to) = (started - chrono::Duration::seconds(1), ended);
    let mut times = Vec::new();
    for m in &messages {
        let raw = m.value.as_deref().unwrap_or_default();
        if let Ok(event) = clickstream::event::validate(raw, to) {
            times.push(event.event_time);
        }
    }
    let during = times.iter().filter(|t| (from..=to).contains(*t)).count();
    assert!(
        during as f64 >= times.len() as f64 * 0.95,
        "{during} of {} valid events stamped during the run ({from} to {to})",
        times.len()
    );
    // Spread over the 5 s of traffic (the process's own start may take seconds on a loaded machine).
    let mut during_run: Vec<_> = times.iter().filter(|t| (from..=to).contains(*t)).collect();
    during_run.sort();
    let spread = *during_run[during_run.len() - 1] - *during_run[0];
    assert!(
        spread >= chrono::Duration::seconds(4),
        "events stamped over {spread} of a 5 s run"
    );
}
