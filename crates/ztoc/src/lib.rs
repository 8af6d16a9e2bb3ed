//! soci-ztoc: the zTOC of a layer — model, Go-compatible tar walk, flatbuffers codec.
pub mod codec;
pub mod gotime;
pub mod model;
pub mod tar_walk;
pub use model::*;
