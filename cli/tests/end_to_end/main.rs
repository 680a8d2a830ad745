//! End-to-end tests of the `clickstream` binary, as one test binary (one link instead of one per
//! file): the embedded demo, the dashboard in a real browser, and the local stack.

mod browser;
mod concurrent;
mod demo;
mod local_stack;
