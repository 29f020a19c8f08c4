// loss kernels: being written.
