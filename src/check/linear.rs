//! Checks of linear: being written.
