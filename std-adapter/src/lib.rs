//! `guru`: Guru Meditation Reports for Rust processes (std adapter).
//!
//! This crate grows into the full adapter (sections, configuration, JSON,
//! log files); for now it re-exports the core engine.

pub use guru_core as core;
