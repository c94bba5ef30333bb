//! The only code that knows Twilio: webhook handlers and TwiML, the request-signature
//! check, and the Media Streams wire format. Nothing outside sees Twilio's JSON.

pub mod conversation_relay;
pub mod media_stream;
pub mod signature;
pub mod twiml;
pub mod webhooks;
