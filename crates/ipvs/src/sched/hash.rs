//! Placeholder: the kernel's hash functions (hash_32, hsiphash), being written.
