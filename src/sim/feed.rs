//! One call's live feed as the simulated caller hears it: `GET /calls/{sid}/events`
//! (Server-Sent Events) read into the feed's own event type. The SSE framing is undone here
//! and nowhere else.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::call::events::LiveEvent;
use crate::domain::calls::Speaker;
use crate::telephony::signature;

/// What the feed says about the call.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// A transcript line, possibly again and longer under the same `seq`.
    Turn {
        seq: i32,
        agent: bool,
        text: String,
    },
    Ended,
}

/// An open feed.
pub struct CallFeed {
    response: reqwest::Response,
    buffer: String,
}

impl CallFeed {
    /// Opens the call's feed; once this returns, nothing the call publishes is missed.
    pub async fn open(base_url: &str, call_sid: &str, auth_token: Option<&str>) -> anyhow::Result<Self> {
        let url = format!("{}/calls/{call_sid}/events", base_url.trim_end_matches('/'));
        let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?;
        let mut req = client.get(&url);
        if let Some(token) = auth_token {
            req = req.header("X-Twilio-Signature", signature::sign(token, &url, &[]));
        }
        let response = req.send().await.context("opening the call's live feed")?;
        if !response.status().is_success() {
            bail!("the call's live feed answered {}", response.status());
        }
        Ok(Self { response, buffer: String::new() })
    }

    /// The next event; `None` when the stream ends.
    pub async fn next(&mut self) -> Option<FeedEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n")),
                _ => return None,
            }
        }
    }
}

/// One SSE block (`event:` and `data:` lines) as a feed event; comments and others are `None`.
fn parse_block(block: &str) -> Option<FeedEvent> {
    let data: Vec<&str> = block.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.trim_start()).collect();
    if data.is_empty() {
        return None;
    }
    match LiveEvent::from_json(&data.join("\n")).ok()? {
        LiveEvent::Turn { seq, speaker, text, .. } => {
            Some(FeedEvent::Turn { seq, agent: speaker == Speaker::Agent, text: text.into_owned() })
        }
        LiveEvent::Ended { .. } => Some(FeedEvent::Ended),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::policy::Outcome;

    #[test]
    fn sse_blocks_become_feed_events_and_comments_are_skipped() {
        let ended = LiveEvent::Ended { call_sid: "CA1".into(), outcome: Outcome::None }.to_json();
        assert_eq!(parse_block(&format!("event: ended\ndata: {ended}\n\n")), Some(FeedEvent::Ended));
        assert_eq!(parse_block(":keep-alive\n\n"), None);
        assert_eq!(parse_block("data: not json\n\n"), None);
    }
}
