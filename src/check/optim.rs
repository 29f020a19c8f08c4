//! Checks of optim: being written.
