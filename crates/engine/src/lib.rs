//! berth-engine: images, layers and root filesystems for the `berth` binary (see ../shared/design.md).

pub mod auth;
pub mod cli;
pub mod content;
pub mod digest;
pub mod images;
pub mod layers;
pub mod reference;
pub mod registry;
pub mod snapshots;
