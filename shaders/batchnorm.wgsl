// batchnorm kernels: being written.
