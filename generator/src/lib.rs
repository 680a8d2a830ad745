//! Synthetic clickstream: users with sessions, page flows, funnels, devices, countries, referrers
//! and UTM tags, with a configurable share of duplicates, invalid records and late events.
//! Deterministic for a given seed and start date.

#![deny(missing_docs)]

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

const SITE: &str = "https://shop.example.com";
const COUNTRIES: [(&str, u32); 10] = [
    ("US", 30),
    ("GB", 10),
    ("DE", 10),
    ("FR", 8),
    ("IN", 12),
    ("BR", 8),
    ("CA", 6),
    ("JP", 6),
    ("ES", 5),
    ("AU", 5),
];
const DEVICES: [(&str, u32); 3] = [("mobile", 55), ("desktop", 38), ("tablet", 7)];
const REFERRERS: [(Option<&str>, u32); 6] = [
    (None, 40),
    (Some("https://www.google.com/"), 30),
    (Some("https://www.bing.com/"), 5),
    (Some("https://t.co/x"), 8),
    (Some("https://www.facebook.com/"), 10),
    (Some("https://news.example.org/article"), 7),
];
const UTM_SOURCES: [&str; 4] = ["newsletter", "google", "facebook", "partner"];
const CONTENT_PAGES: [&str; 6] = [
    "/",
    "/products",
    "/about",
    "/blog/launch",
    "/blog/sizing-guide",
    "/help",
];
const USER_AGENTS: [&str; 3] = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
];

/// Settings of the generator.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Records to produce (including duplicates and invalid ones).
    pub events: usize,
    /// Seed of the random choices: the same seed gives the same records.
    pub seed: u64,
    /// First day of the simulated period (UTC).
    pub start: NaiveDate,
    /// Length of the simulated period in days.
    pub days: u32,
    /// Distinct users (default: one per 25 events, at least 10).
    pub users: Option<usize>,
    /// Share of records that resend an earlier event (same event_id).
    pub duplicate_rate: f64,
    /// Share of records that are invalid (quarantined downstream).
    pub invalid_rate: f64,
    /// Share of events that arrive one to three days late.
    pub late_rate: f64,
    /// Sessions follow [`daily_curve`] over the day instead of starting at an even pace.
    pub daily_curve: bool,
}

/// Traffic at `t` relative to the mean: a day's wave peaking at 16:00 UTC at 1.6 and lowest at
/// 04:00 UTC at 0.4 (its mean over a day is 1).
pub fn daily_curve(t: DateTime<Utc>) -> f64 {
    use chrono::Timelike;
    let hour = t.num_seconds_from_midnight() as f64 / 3600.0;
    1.0 + 0.6 * ((hour - 10.0) / 24.0 * std::f64::consts::TAU).sin()
}

impl GeneratorConfig {
    /// Defaults: 7 days ending yesterday, 1% duplicates, 0.5% invalid, 1% late, the daily curve.
    pub fn new(events: usize) -> GeneratorConfig {
        let days = 7;
        GeneratorConfig {
            events,
            seed: 42,
            start: Utc::now().date_naive() - Duration::days(days as i64),
            days,
            users: None,
            duplicate_rate: 0.01,
            invalid_rate: 0.005,
            late_rate: 0.01,
            daily_curve: true,
        }
    }
}

#[derive(Serialize)]
struct Event<'a> {
    event_id: String,
    event_type: &'a str,
    event_time: String,
    anonymous_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    session_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    page_url: Option<String>,
    referrer: Option<&'a str>,
    user_agent: &'a str,
    device_type: &'a str,
    country: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<serde_json::Value>,
}

/// An iterator of raw records (JSON lines, or deliberately broken bytes).
pub struct Generator {
    cfg: GeneratorConfig,
    rng: ChaCha8Rng,
    users: usize,
    produced: usize,
    /// Events of the current session, each with when it happens (its `event_time`, or for a late
    /// event the time it would have been sent).
    pending: std::collections::VecDeque<(DateTime<Utc>, Vec<u8>)>,
    /// Events sent lately, with their times, for duplicates to resend.
    recent: Vec<(DateTime<Utc>, Vec<u8>)>,
    start: DateTime<Utc>,
    clock: DateTime<Utc>,
    end: DateTime<Utc>,
    /// Every event falls within `start..end`: a session that would run past `end` starts
    /// earlier, and no late event is dated before `start`. Off for [`Live`]'s short windows,
    /// whose sessions run on past them.
    bounded: bool,
    session_events: u64,
    session_no: u64,
    event_no: u64,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for (item, w) in items {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[0].0
}

impl Generator {
    /// The events of `cfg.days` days from `cfg.start`.
    pub fn new(cfg: GeneratorConfig) -> Generator {
        let from = cfg.start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let to = from + Duration::days(cfg.days.max(1) as i64);
        Generator::over(cfg, from, to)
    }

    /// The events of sessions from `from` to `to`, every event within them (`cfg.start` and
    /// `cfg.days` unused): the period starts with sessions at full pace and ends with whole
    /// sessions.
    pub fn over(cfg: GeneratorConfig, from: DateTime<Utc>, to: DateTime<Utc>) -> Generator {
        Generator::sessions(cfg, from, to, true)
    }

    fn sessions(
        cfg: GeneratorConfig,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bounded: bool,
    ) -> Generator {
        let users = cfg.users.unwrap_or((cfg.events / 25).max(10));
        Generator {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            users,
            produced: 0,
            pending: Default::default(),
            recent: Vec::new(),
            start: from,
            clock: from,
            end: to,
            bounded,
            session_events: 0,
            session_no: 0,
            event_no: 0,
            cfg,
        }
    }

    fn next_id(&mut self) -> String {
        self.event_no += 1;
        format!("{:08x}-{:012x}", self.cfg.seed as u32, self.event_no)
    }

    /// Appends the events of one simulated session to `pending`.
    fn session(&mut self) {
        self.session_no += 1;
        // Spread the sessions still to come evenly over the rest of the period, so the stream
        // ends by `start + days` whatever the sessions' lengths turn out to be.
        let per_session = if self.session_no > 1 {
            self.session_events as f64 / (self.session_no - 1) as f64
        } else {
            5.0
        };
        let sessions_left = ((self.cfg.events - self.produced) as f64 / per_session).max(1.0);
        let left_us = (self.end - self.clock)
            .num_microseconds()
            .unwrap_or(0)
            .max(0) as f64;
        let jitter = self.rng.random_range(0.0..2.0);
        // Along the daily curve, sessions come closer together where traffic is high.
        let pace = if self.cfg.daily_curve {
            daily_curve(self.clock)
        } else {
            1.0
        };
        let step = left_us / (sessions_left + 1.0) * jitter / pace;
        self.clock += Duration::microseconds(step as i64);
        if self.bounded {
            self.clock = self.clock.min(self.end);
        }
        // Skewed user choice: a few users come back often.
        let u = (self.users as f64 * self.rng.random::<f64>().powf(2.0)) as usize;
        // Two users in five have an account. They come back on a second device now and then;
        // half their sessions start anonymous and log in midway, one in five stays anonymous
        // throughout (a later login on the device re-keys it), the rest are logged in from the
        // start.
        let registered = u % 5 < 2;
        let second_device = registered && self.rng.random_bool(0.3);
        let anonymous_id = if second_device {
            format!("anon-{u:07}-b")
        } else {
            format!("anon-{u:07}")
        };
        let user_id = registered.then(|| format!("user-{u:07}"));
        let login = self.rng.random::<f64>();
        let device = pick(&mut self.rng, &DEVICES);
        let country = pick(&mut self.rng, &COUNTRIES);
        let referrer = pick(&mut self.rng, &REFERRERS);
        let utm = self
            .rng
            .random_bool(0.2)
            .then(|| UTM_SOURCES[self.rng.random_range(0..UTM_SOURCES.len())]);
        let ua = USER_AGENTS[DEVICES.iter().position(|(d, _)| *d == device).unwrap_or(0)];
        let session_id = format!("s-{:x}-{}", self.cfg.seed, self.session_no);

        let flow = self.page_flow(utm);
        // The first event that carries the user_id (none when past the end).
        let login_at = match login {
            _ if !registered => usize::MAX,
            l if l < 0.5 => self.rng.random_range(1..=flow.len()),
            l if l < 0.7 => usize::MAX,
            _ => 0,
        };
        // One midway login in five reaches the pipeline after the rest of its session (a
        // client that sends it late): the session's anonymous events come first.
        let login_arrives_late = (1..flow.len()).contains(&login_at) && self.rng.random_bool(0.2);
        let mut late_login = None;
        let mut times = vec![self.clock];
        for _ in 1..flow.len() {
            let gap = Duration::milliseconds(self.rng.random_range(3_000..120_000));
            times.push(times[times.len() - 1] + gap);
        }
        let overrun = times[times.len() - 1] - (self.end - Duration::seconds(1));
        if self.bounded && overrun > Duration::zero() {
            times.iter_mut().for_each(|t| *t -= overrun);
        }
        for (step, ((event_type, path), t)) in flow.into_iter().zip(times).enumerate() {
            let late = self.rng.random_bool(self.cfg.late_rate);
            let lateness = Duration::hours(self.rng.random_range(24..72));
            let event_time = if late && !(self.bounded && t - lateness < self.start) {
                t - lateness
            } else {
                t
            };
            let properties = match event_type {
                "view_product" | "add_to_cart" | "purchase" => Some(serde_json::json!({
                    "product_id": path.rsplit('/').next(),
                    "price": (self.rng.random_range(500..20_000) as f64) / 100.0,
                    "currency": "EUR",
                })),
                "search" => Some(serde_json::json!({ "query": "shoes" })),
                _ => None,
            };
            let event = Event {
                event_id: self.next_id(),
                event_type,
                event_time: event_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                anonymous_id: anonymous_id.clone(),
                user_id: user_id.clone().filter(|_| step >= login_at),
                session_id: session_id.clone(),
                page_url: Some(format!("{SITE}{path}")),
                referrer,
                user_agent: ua,
                device_type: device,
                country,
                properties,
            };
            self.session_events += 1;
            let line = serde_json::to_vec(&event).unwrap_or_default();
            if login_arrives_late && step == login_at {
                late_login = Some((t, line));
            } else {
                self.pending.push_back((t, line));
            }
        }
        self.pending.extend(late_login);
    }

    /// The page flow of a session: browse, maybe search, maybe go down the funnel; each step an
    /// event type and the page's path (the landing page tagged with `utm`).
    fn page_flow(&mut self, utm: Option<&str>) -> Vec<(&'static str, String)> {
        let mut flow: Vec<(&'static str, String)> = Vec::new();
        let landing = CONTENT_PAGES[self.rng.random_range(0..CONTENT_PAGES.len())];
        let landing = match utm {
            Some(src) => format!("{landing}?utm_source={src}&utm_medium=referral"),
            None => landing.to_string(),
        };
        flow.push(("page_view", landing));
        let browse = self.rng.random_range(0..4);
        for _ in 0..browse {
            if self.rng.random_bool(0.2) {
                flow.push(("search", "/search?q=shoes".to_string()));
            }
            let product = self.rng.random_range(1..200);
            flow.push(("page_view", format!("/products/{product}")));
            flow.push(("view_product", format!("/products/{product}")));
            if self.rng.random_bool(0.35) {
                flow.push(("add_to_cart", format!("/products/{product}")));
                if self.rng.random_bool(0.1) {
                    flow.push(("remove_from_cart", "/cart".to_string()));
                }
            }
        }
        if flow.iter().any(|(t, _)| *t == "add_to_cart") && self.rng.random_bool(0.5) {
            flow.push(("page_view", "/cart".to_string()));
            flow.push(("begin_checkout", "/checkout".to_string()));
            if self.rng.random_bool(0.6) {
                flow.push(("purchase", "/checkout/complete".to_string()));
            }
        }
        if self.rng.random_bool(0.05) {
            flow.push(("signup", "/signup".to_string()));
        }
        flow
    }

    fn invalid(&mut self) -> Vec<u8> {
        let id = self.next_id();
        match self.rng.random_range(0..6) {
            0 => b"{\"event_id\": \"broken".to_vec(),
            1 => format!("{{\"event_type\":\"click\",\"event_time\":\"2026-01-01T00:00:00Z\",\"anonymous_id\":\"a\",\"bad_id\":\"{id}\"}}").into_bytes(),
            2 => format!("{{\"event_id\":\"{id}\",\"event_type\":\"click\",\"event_time\":\"last tuesday\",\"anonymous_id\":\"a\"}}").into_bytes(),
            3 => b"[\"not\", \"an\", \"object\"]".to_vec(),
            4 => format!("{{\"event_id\":\"{id}\",\"event_type\":\"click\",\"event_time\":\"2999-01-01T00:00:00Z\",\"anonymous_id\":\"a\"}}").into_bytes(),
            _ => vec![b'{', 0xff, 0xfe, b'}'],
        }
    }
}

impl Generator {
    /// The next record with when it is sent: a session's events at their times, a duplicate or an
    /// invalid record at the time of the session being generated.
    pub fn next_timed(&mut self) -> Option<(DateTime<Utc>, Vec<u8>)> {
        if self.produced >= self.cfg.events {
            return None;
        }
        self.produced += 1;
        if self.rng.random_bool(self.cfg.invalid_rate) {
            return Some((self.clock, self.invalid()));
        }
        if !self.recent.is_empty() && self.rng.random_bool(self.cfg.duplicate_rate) {
            // A resend comes after the original.
            let i = self.rng.random_range(0..self.recent.len());
            let (sent, line) = self.recent[i].clone();
            return Some((sent.max(self.clock), line));
        }
        while self.pending.is_empty() {
            self.session();
        }
        let (at, line) = self.pending.pop_front()?;
        if self.recent.len() < 1024 {
            self.recent.push((at, line.clone()));
        } else {
            let i = self.rng.random_range(0..self.recent.len());
            self.recent[i] = (at, line.clone());
        }
        Some((at, line))
    }
}

impl Iterator for Generator {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        self.next_timed().map(|(_, line)| line)
    }
}

/// Live traffic: sessions of many users starting from now on, interleaved, each event handed out
/// when the wall clock reaches its time (so `event_time` is the time it is sent; a late event
/// keeps its earlier `event_time`). Sessions are generated a window at a time, `rate` events per
/// second on average, following a daily curve when asked. Never ends.
pub struct Live {
    cfg: GeneratorConfig,
    rate: f64,
    daily_curve: bool,
    /// Records due before this are dropped: the sessions already in progress at the start.
    from: DateTime<Utc>,
    window_start: DateTime<Utc>,
    window: u64,
    due: std::collections::BinaryHeap<Due>,
    sequence: u64,
}

/// A generated record waiting for its time: (time, order generated, record), earliest first.
type Due = std::cmp::Reverse<(DateTime<Utc>, u64, Vec<u8>)>;

/// Seconds of sessions [`Live`] generates at a time.
const LIVE_WINDOW_S: i64 = 10;
/// How far before its start [`Live`] begins simulating, so that it starts with sessions in
/// progress rather than ramping up (a session lasts up to about 15 minutes).
const LIVE_WARM_UP_S: i64 = 20 * 60;

impl Live {
    /// Live traffic from `from` at `rate` events per second on average (`cfg.events`,
    /// `cfg.start` and `cfg.days` unused).
    pub fn new(cfg: GeneratorConfig, rate: f64, daily_curve: bool, from: DateTime<Utc>) -> Live {
        Live {
            cfg,
            rate,
            daily_curve,
            from,
            window_start: from - Duration::seconds(LIVE_WARM_UP_S),
            window: 0,
            due: Default::default(),
            sequence: 0,
        }
    }

    /// Traffic at `t` relative to the mean: 1 without the curve, else [`daily_curve`].
    pub fn curve(&self, t: DateTime<Utc>) -> f64 {
        if self.daily_curve {
            daily_curve(t)
        } else {
            1.0
        }
    }

    /// Generates the sessions of the next window into the queue.
    fn generate_window(&mut self) {
        let from = self.window_start;
        let to = from + Duration::seconds(LIVE_WINDOW_S);
        let events = (self.rate * self.curve(from) * LIVE_WINDOW_S as f64).round() as usize;
        let cfg = GeneratorConfig {
            events,
            seed: self
                .cfg
                .seed
                .wrapping_add(self.window.wrapping_mul(0x9E37_79B9)),
            // Users come back across windows: the population is the day's, not the window's.
            users: Some(
                self.cfg
                    .users
                    .unwrap_or((self.rate * 3600.0 / 25.0).max(10.0) as usize),
            ),
            // The window is short: the wave is in `events`, not in the pace within it.
            daily_curve: false,
            ..self.cfg.clone()
        };
        let mut window = Generator::sessions(cfg, from, to, false);
        while let Some((at, line)) = window.next_timed() {
            self.sequence += 1;
            self.due
                .push(std::cmp::Reverse((at.max(from), self.sequence, line)));
        }
        self.window += 1;
        self.window_start = to;
    }

    /// The next record and when to send it, in time order.
    pub fn next_due(&mut self) -> (DateTime<Utc>, Vec<u8>) {
        loop {
            if let Some(std::cmp::Reverse((at, _, _))) = self.due.peek()
                && *at < self.window_start
            {
                let std::cmp::Reverse((at, _, line)) = self.due.pop().expect("peeked");
                if at >= self.from {
                    return (at, line);
                }
                continue;
            }
            self.generate_window();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n: usize) -> GeneratorConfig {
        GeneratorConfig {
            start: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            ..GeneratorConfig::new(n)
        }
    }

    #[test]
    fn same_seed_same_output() {
        let a: Vec<_> = Generator::new(cfg(500)).collect();
        let b: Vec<_> = Generator::new(cfg(500)).collect();
        assert_eq!(a.len(), 500);
        assert_eq!(a, b);
        let c: Vec<_> = Generator::new(GeneratorConfig {
            seed: 7,
            ..cfg(500)
        })
        .collect();
        assert_ne!(a, c);
    }

    /// A batch is whole days at full pace: every event (late ones included) within the period,
    /// the first and last days about as busy as the others, afternoons busier than nights.
    #[test]
    fn a_batch_fills_its_days_evenly_and_follows_the_daily_curve() {
        let config = cfg(40_000);
        let start = config.start.and_hms_opt(0, 0, 0).unwrap().and_utc();
        let end = start + Duration::days(config.days as i64);
        let (mut per_day, mut per_hour) = (vec![0usize; config.days as usize], [0usize; 24]);
        for raw in Generator::new(config) {
            let Ok(e) = clickstream::event::validate(&raw, end) else {
                continue;
            };
            assert!(
                e.event_time >= start && e.event_time < end,
                "{} outside the period",
                e.event_time
            );
            per_day[(e.event_time - start).num_days() as usize] += 1;
            per_hour[chrono::Timelike::hour(&e.event_time) as usize] += 1;
        }
        let mean = per_day.iter().sum::<usize>() as f64 / per_day.len() as f64;
        for (day, n) in per_day.iter().enumerate() {
            let ratio = *n as f64 / mean;
            assert!(
                (0.85..1.15).contains(&ratio),
                "day {day}: {n} events, mean {mean:.0}"
            );
        }
        let (afternoon, night) = (
            per_hour[14..18].iter().sum::<usize>(),
            per_hour[2..6].iter().sum::<usize>(),
        );
        assert!(
            afternoon > 2 * night,
            "14-18 UTC: {afternoon} events, 02-06 UTC: {night}"
        );
    }

    #[test]
    fn live_traffic_is_in_time_order_at_the_rate_with_users_interleaved() {
        let from = Utc::now();
        let mut live = Live::new(GeneratorConfig::new(0), 50.0, false, from);
        let records: Vec<_> = (0..3_000).map(|_| live.next_due()).collect();
        assert!(
            records.windows(2).all(|w| w[0].0 <= w[1].0),
            "in time order"
        );
        let span = (records.last().unwrap().0 - from).num_milliseconds() as f64 / 1000.0;
        assert!(
            (50.0..70.0).contains(&span),
            "3,000 events at 50/s took {span} s"
        );
        // Event times are the send times (late events excepted), and sessions interleave: the
        // first 200 records come from many users.
        let now = Utc::now() + Duration::minutes(5);
        let (mut on_time, mut users) = (0, std::collections::HashSet::new());
        for (at, raw) in &records[..200] {
            if let Ok(e) = clickstream::event::validate(raw, now) {
                on_time += ((e.event_time - *at).num_milliseconds().abs() < 1) as usize;
                users.insert(e.user_key().to_string());
            }
        }
        assert!(
            on_time > 180,
            "{on_time} of 200 stamped with their send time"
        );
        assert!(
            users.len() > 20,
            "{} users in the first 200 records",
            users.len()
        );
    }

    #[test]
    fn the_daily_curve_averages_to_the_rate() {
        let live = Live::new(GeneratorConfig::new(0), 100.0, true, Utc::now());
        let midnight = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let mean = (0..24 * 60)
            .map(|m| live.curve(midnight + Duration::minutes(m)))
            .sum::<f64>()
            / (24.0 * 60.0);
        assert!((mean - 1.0).abs() < 1e-3, "{mean}");
        assert!(live.curve(midnight + Duration::hours(16)) > 1.5);
        assert!(live.curve(midnight + Duration::hours(4)) < 0.5);
    }

    #[test]
    fn injects_duplicates_invalid_and_late_records() {
        let now = Utc::now();
        let mut ids = std::collections::HashSet::new();
        let (mut dups, mut invalid, mut valid) = (0, 0, 0);
        for raw in Generator::new(cfg(20_000)) {
            match clickstream::event::validate(&raw, now) {
                Ok(e) => {
                    valid += 1;
                    if !ids.insert(e.event_id.into_owned()) {
                        dups += 1;
                    }
                }
                Err(_) => invalid += 1,
            }
        }
        assert!((100..400).contains(&dups), "duplicates: {dups}");
        assert!((40..200).contains(&invalid), "invalid: {invalid}");
        assert_eq!(valid + invalid, 20_000);
    }
}
