//! Checks of loss: being written.
