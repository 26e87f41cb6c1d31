//! Network-fault scenarios: every TCP-level fault followed by recovery, a network that always fails, corrupted
//! bodies, HTTP error storms with Retry-After. See [`super::cache_dir`] for the cache-directory stress.
