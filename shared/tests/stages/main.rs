//! Integration tests of the library on real Delta tables in temporary lakes, as one test binary
//! (one link instead of one per file).

mod appends;
mod catch_up;
mod compaction;
mod erasure;
mod health;
mod hostile_files;
mod identities;
mod input_contract;
mod maintenance;
mod pipeline;
mod reads;
mod sessions;
mod writes;
