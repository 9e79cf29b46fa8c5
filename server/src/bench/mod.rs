//! `ferrocket bench ...`: load and storage benchmarks.

pub mod store;
