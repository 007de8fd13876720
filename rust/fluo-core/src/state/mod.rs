//! Change-management records kept in fluo-system besides the release records: announcements
//! (the notice period), incidents (the escalation ladder) and the notification log. Each is a
//! JSON document in a labelled ConfigMap (`store`).

pub mod announcements;
pub mod incidents;
pub mod notifications;
pub mod store;
