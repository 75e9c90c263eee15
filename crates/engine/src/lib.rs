//! berth-engine: images, layers and root filesystems for the `berth` binary (see ../shared/design.md).

pub mod content;
pub mod digest;
pub mod layers;
pub mod reference;
