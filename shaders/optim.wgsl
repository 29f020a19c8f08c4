// optim kernels: being written.
