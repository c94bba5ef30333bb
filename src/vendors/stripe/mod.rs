//! Stripe: the REST client (`client`: customers, Checkout Sessions, SetupIntents,
//! off-session PaymentIntents) and webhook handling (`webhook`: signature verification and
//! typed events). Stripe's JSON and form encoding stay inside this module.
//!
//! Written directly on reqwest rather than on `async-stripe`: the project needs a handful of
//! endpoints, the signature check is about fifteen lines, the client builds in seconds
//! instead of minutes, and its base URL is injectable so tests talk to a loopback fake.
//! `async-stripe`'s webhook helper also checks only the last `v1` signature, which breaks
//! while a signing secret is being rolled; `webhook::verify` accepts any of them.

pub mod client;
pub mod webhook;

pub use client::{
    CheckoutMode, CheckoutRequest, CheckoutSession, NewCustomer, OffSessionCharge, PaymentIntent, SetupIntent,
    StripeClient, StripeError,
};
pub use webhook::{ChargeRefund, Event, EventKind, PaymentIntentEvent, SignatureError};
