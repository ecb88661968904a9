//! kup-core.
