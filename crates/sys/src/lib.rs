//! Thin wrappers around the Linux syscalls Berth needs: the only crate with unsafe code.
