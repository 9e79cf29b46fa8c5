//! Shared helpers for the benches (baselines).
