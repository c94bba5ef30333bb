//! Speech providers behind small traits, so that cloud engines slot in beside the local ones.

pub mod breaker;
pub mod llm;
#[cfg(test)]
pub mod scripted;
pub mod stt;
pub mod tts;

/// A provider failure. `retryable` tells the caller whether trying again may help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{provider}: {message}")]
pub struct ProviderError {
    pub provider: &'static str,
    pub message: String,
    pub retryable: bool,
}

impl ProviderError {
    pub fn fatal(provider: &'static str, message: impl Into<String>) -> Self {
        Self { provider, message: message.into(), retryable: false }
    }
    pub fn retryable(provider: &'static str, message: impl Into<String>) -> Self {
        Self { provider, message: message.into(), retryable: true }
    }
}
