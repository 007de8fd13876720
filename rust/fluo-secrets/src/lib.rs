//! The platform's credentials, made by `fluo-secrets` (docs/security.md):
//! - [`api_tokens`]: add and remove BFF API tokens in a tokens file (only hashes are stored;
//!   the token itself is written once, to a file the operator hands to the client);
//! - [`nats_users`]: one NATS user per service with the subjects it needs and nothing more,
//!   rendered as nats-server's `authorization` block, plus each service's user and password
//!   files; [`rotation`] replaces them without downtime;
//! - [`tls`]: a local CA and the NATS server certificate it signs, for local and rehearsal
//!   environments (production uses the operator's CA).
//!
//! Every secret is written to a file created with mode 0600, never printed.

pub mod api_tokens;
pub mod bundle;
pub mod cli;
pub mod files;
pub mod nats_users;
pub mod rotation;
pub mod tls;
