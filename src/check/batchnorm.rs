//! Checks of batchnorm: being written.
