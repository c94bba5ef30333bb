//! Pure business rules: no database, network or async runtime in here.

pub mod accounts;
pub mod appointments;
pub mod calls;
pub mod confirmation;
pub mod credits;
pub mod events;
pub mod forwarding;
pub mod ids;
pub mod language;
pub mod messages;
pub mod names;
pub mod phone;
pub mod reminders;
pub mod scheduling;
pub mod settings;
pub mod tenants;
