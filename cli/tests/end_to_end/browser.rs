//! The dashboard renders in a real browser: headless Chromium loads the exported page, takes a
//! screenshot (into docs/dashboard.png with CLICKSTREAM_UPDATE_SCREENSHOT=1), and the rendered
//! DOM has every chart, with no console errors.
//! Needs Chromium: `scripts/test` installs it (or set CHROMIUM to its path); a plain `cargo test`
//! without it skips this test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Chromium (`CHROMIUM`, or /usr/bin/chromium), or `None` (the test is skipped) when it is not
/// installed; see [`crate::available`].
pub fn chromium() -> Option<PathBuf> {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let missing: Vec<String> = (!path.exists())
        .then(|| format!("Chromium at {} (or set CHROMIUM)", path.display()))
        .into_iter()
        .collect();
    crate::available("the browser test", &missing).then_some(path)
}

pub fn headless(chromium: &Path, profile: &Path) -> Command {
    let mut c = Command::new(chromium);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[test]
fn dashboard_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let demo = Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args([
            "demo",
            "--events",
            "3000",
            "--days",
            "5",
            "--lake",
            lake.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let page = lake.join("exports/dashboard.html");
    let html = std::fs::read_to_string(&page).unwrap();
    for attr in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(
            !html.contains(attr),
            "the page must load nothing from the network ({attr})"
        );
    }
    assert!(!html.contains("<script"), "the page needs no scripts");

    let url = format!("file://{}", page.display());
    let dom = headless(&chromium, &dir.path().join("profile-dom"))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let rendered = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    for line in log.lines().filter(|l| l.contains("CONSOLE")) {
        assert!(
            !line.to_lowercase().contains("error"),
            "console error: {line}"
        );
    }
    for chart in [
        "active_users",
        "traffic",
        "session_duration",
        "events_per_session",
        "funnel",
    ] {
        let part = rendered
            .split(&format!("data-chart=\"{chart}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("chart {chart} missing from the rendered page"));
        let svg = part.split("</figure>").next().unwrap();
        assert!(svg.contains("<svg"), "{chart} has no svg");
        assert!(
            svg.contains("<polyline") || svg.contains("<rect"),
            "{chart} draws nothing"
        );
    }
    assert_eq!(rendered.matches("class=\"tile\"").count(), 6);

    let shot = dir.path().join("dashboard.png");
    let out = headless(&chromium, &dir.path().join("profile-shot"))
        .args([
            "--window-size=1280,2200",
            &format!("--screenshot={}", shot.display()),
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot is {} bytes",
        png.len()
    );
    // The README's screenshot: refreshed with CLICKSTREAM_UPDATE_SCREENSHOT=1.
    let out_dir = match std::env::var_os("CLICKSTREAM_UPDATE_SCREENSHOT") {
        Some(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs"),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    };
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("dashboard.png"), png).unwrap();

    let phone = dir.path().join("phone.png");
    let out = headless(&chromium, &dir.path().join("profile-phone"))
        .args([
            "--window-size=390,2400",
            &format!("--screenshot={}", phone.display()),
            &url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success() && phone.exists());
}
