//! soci-ztoc: the zTOC of a layer — model, Go-compatible tar walk, flatbuffers codec.
pub mod codec;
pub mod model;
pub use model::*;
