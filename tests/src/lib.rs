//! Shared helpers for the process-level tests live in `tests/common`.
