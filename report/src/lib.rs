//! What people look at: the HTML dashboard and the terminal report, both read from gold, and the
//! pipeline's health (`clickstream status`, the dashboard's pipeline panel). The
//! exporter function and the CLI link it; no other function does.

#![deny(missing_docs)]

pub mod dashboard;
pub mod health;

use clickstream::Result;
use clickstream::export::ExportOutcome;
use clickstream::functions;
use clickstream::lake::{EXPORTS_PREFIX, Lake};
use object_store::ObjectStoreExt;

/// The exporter function's work: the gold exports ([`functions::exporter`]), then the dashboard
/// beside them.
pub async fn exporter(lake: &Lake) -> Result<ExportOutcome> {
    let mut outcome = functions::exporter(lake).await?;
    outcome
        .files
        .push(write_dashboard(lake, Default::default()).await?);
    Ok(outcome)
}

/// Text made safe inside HTML elements and attribute values.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders `exports/dashboard.html` from gold within `range`; returns its key.
pub async fn write_dashboard(lake: &Lake, range: dashboard::DateRange) -> Result<String> {
    let data = dashboard::load(lake, range).await?;
    let key = format!("{EXPORTS_PREFIX}{}", dashboard::DASHBOARD_FILE);
    let html = dashboard::render_html(&data).into_bytes();
    lake.store()?.put(&key.as_str().into(), html.into()).await?;
    Ok(key)
}
