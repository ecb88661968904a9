//! kup's cross-crate tests: the simulated clusters and the reference provider the engine's
//! end-to-end tests run against.

// Test-support code: a failed expectation is a test failure, so it panics with context.
#![allow(missing_docs)]

pub mod reference;
pub mod sim;
