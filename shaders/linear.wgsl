// linear kernels: being written.
