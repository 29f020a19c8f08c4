//! Checks of pool: being written.
