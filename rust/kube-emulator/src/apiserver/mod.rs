//! The API machinery and storage: the store and its watch events, the registry (create, update,
//! patch, delete with the apiserver's rules), admission (defaults and validation), schemas,
//! patches, managed fields, selectors and Status errors.

pub mod admission;
pub mod managed;
pub mod patch;
pub mod registry;
pub mod resources;
pub mod schema;
pub mod selectors;
pub mod status;
pub mod store;
pub mod watch;
