//! Dashboards from gold: a self-contained HTML page and a terminal report, both from the same
//! [`DashboardData`] ([`load`]).

mod data;
mod page;
mod text;

pub use data::{
    BinnedDay, Cohort, DURATION_BINS, DashboardData, DateRange, EVENTS_BINS, FunnelStep, Headline,
    SessionsBy, load,
};
pub use page::render_html;
pub use text::render_report;

/// Name of the dashboard file under `exports/`.
pub const DASHBOARD_FILE: &str = "dashboard.html";
