//! Checks of conv2d: being written.
