//! Tenants: who they are, where their Intercom workspace lives, and their sealed credential.

pub mod crypto;
mod directory;
mod id;
pub mod model;
pub mod notify;
pub mod repo;
pub mod rotation;

pub use directory::{LiveCredential, LoadError, TenantDirectory, TenantEntry};
pub use id::{InvalidTenantId, TenantId};
