//! The stack under test and what scenarios need to drive and inspect it.

#![allow(dead_code, reason = "each test binary uses a different part")]

pub mod checkout;
pub mod harness;
pub mod invariants;
pub mod metrics_table;
pub mod stack;
