//! `FakeSmtp`: a small SMTP server on loopback (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT; no TLS, no AUTH) that records every message it accepts. It can be told to refuse
//! the next messages with a reply code (451: try again later, 550: refused), given after
//! DATA as a real server refusing a message does.
//!
//! ```ignore
//! let smtp = FakeSmtp::start().await;
//! // SMTP_URL = smtp.url()
//! smtp.refuse_next(451, 1);
//! assert!(smtp.wait_for_messages(1, Duration::from_secs(10)).await);
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One accepted message.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body as sent (dot-unstuffed).
    pub data: String,
}

impl ReceivedMail {
    /// The value of header `name` (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n")?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    }

    /// The body decoded from its transfer encoding (7bit, quoted-printable or base64).
    pub fn text(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        match self.header("Content-Transfer-Encoding").map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("base64") => {
                let joined: String = body.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD.decode(joined).unwrap_or_default();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Some("quoted-printable") => quoted_printable(body),
            _ => body.to_owned(),
        }
        .replace("\r\n", "\n")
    }
}

fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Some(byte) = joined.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<ReceivedMail>>,
    /// Reply codes for the next messages' DATA, in order.
    refusals: Mutex<VecDeque<u16>>,
    /// Messages refused so far.
    refused: Mutex<usize>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct FakeSmtp {
    port: u16,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeSmtp {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake SMTP server");
        let port = listener.local_addr().expect("bound").port();
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, Arc::clone(&accepting)));
            }
        });
        Self { port, shared, server }
    }

    /// The `SMTP_URL` that reaches this server (plain SMTP on loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// The next `count` messages are answered `code` after their DATA (and not recorded).
    pub fn refuse_next(&self, code: u16, count: usize) {
        let mut refusals = lock(&self.shared.refusals);
        refusals.extend(std::iter::repeat_n(code, count));
    }

    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.messages).clone()
    }

    pub fn refused(&self) -> usize {
        *lock(&self.shared.refused)
    }

    /// Waits until at least `count` messages were accepted, up to `within`.
    pub async fn wait_for_messages(&self, count: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if lock(&self.shared.messages).len() >= count {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        lock(&self.shared.messages).len() >= count
    }

    /// Waits until at least `count` messages were refused, up to `within`.
    pub async fn wait_for_refusals(&self, count: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.refused() >= count {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.refused() >= count
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The address inside `MAIL FROM:<a@b>` / `RCPT TO:<a@b>` (parameters after it ignored).
fn address(argument: &str) -> String {
    let start = argument.find('<').map(|i| i + 1).unwrap_or(0);
    let end = argument[start..].find('>').map(|i| start + i).unwrap_or(argument.len());
    argument[start..end].to_owned()
}

async fn session(stream: TcpStream, shared: Arc<Shared>) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    if writer.write_all(b"220 fake.smtp.test ESMTP ready\r\n").await.is_err() {
        return;
    }
    let mut from = String::new();
    let mut to: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let upper = command.to_ascii_uppercase();
        let answer: String = if upper.starts_with("EHLO") {
            "250-fake.smtp.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n".into()
        } else if upper.starts_with("HELO") {
            "250 fake.smtp.test\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&command[10..]);
            to.clear();
            "250 2.1.0 OK\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&command[8..]));
            "250 2.1.5 OK\r\n".into()
        } else if upper == "DATA" {
            if writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await.is_err() {
                return;
            }
            let Some(data) = read_data(&mut reader).await else { return };
            let refusal = lock(&shared.refusals).pop_front();
            match refusal {
                Some(code) => {
                    *lock(&shared.refused) += 1;
                    let words = if code < 500 { "try again later" } else { "message refused" };
                    format!("{code} {words}\r\n")
                }
                None => {
                    lock(&shared.messages).push(ReceivedMail {
                        from: std::mem::take(&mut from),
                        to: std::mem::take(&mut to),
                        data,
                    });
                    "250 2.0.0 OK queued\r\n".into()
                }
            }
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            "250 OK\r\n".into()
        } else if upper == "NOOP" {
            "250 OK\r\n".into()
        } else if upper == "QUIT" {
            let _ = writer.write_all(b"221 Bye\r\n").await;
            return;
        } else {
            "502 command not implemented\r\n".into()
        };
        if writer.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads a DATA section up to the lone dot, undoing dot-stuffing.
async fn read_data(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let content = line.trim_end_matches(['\r', '\n']);
        if content == "." {
            return Some(data);
        }
        let content = content.strip_prefix('.').filter(|_| content.starts_with("..")).unwrap_or(content);
        data.push_str(content);
        data.push_str("\r\n");
    }
}
