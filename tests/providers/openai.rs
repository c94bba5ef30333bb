//! `OpenAiLlm` against `FakeOpenAi`: streaming text and tool calls, error classification,
//! timeouts, malformed lines, cancellation and the request body sent.

use std::time::{Duration, Instant};

use ringlypro::providers::llm::openai::{OpenAiConfig, OpenAiLlm, parse_arguments};
use ringlypro::providers::llm::{ChatMessage, ChatRequest, LanguageModel, LlmEvent, ToolCallRequest, ToolSpec};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::fakes::openai::{ChatRequestJson, FakeOpenAi, Script};

/// Longest a whole test stream may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(10);

fn check_availability() -> ToolSpec {
    ToolSpec {
        name: "check_availability".into(),
        description: "Free appointment slots on a date".into(),
        parameters: json!({
            "type": "object",
            "properties": { "date": { "type": "string", "format": "date" } },
            "required": ["date"],
        }),
    }
}

fn request(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::system("You are the receptionist of a hair salon."), ChatMessage::user(text)],
        tools: vec![check_availability()],
    }
}

fn client(config: OpenAiConfig) -> OpenAiLlm {
    OpenAiLlm::new(config).unwrap()
}

/// Reads events until `Done` or `Error` (inclusive) or the channel closes.
async fn collect(mut events: mpsc::Receiver<LlmEvent>) -> Vec<LlmEvent> {
    let read = async {
        let mut all = Vec::new();
        while let Some(event) = events.recv().await {
            let last = matches!(event, LlmEvent::Done { .. } | LlmEvent::Error(_));
            all.push(event);
            if last {
                break;
            }
        }
        all
    };
    tokio::time::timeout(PATIENCE, read).await.expect("the stream ended in time")
}

fn text_of(events: &[LlmEvent]) -> String {
    events.iter().filter_map(|e| if let LlmEvent::Delta(text) = e { Some(text.as_str()) } else { None }).collect()
}

fn calls_of(events: &[LlmEvent]) -> Vec<ToolCallRequest> {
    events.iter().filter_map(|e| if let LlmEvent::ToolCall(call) = e { Some(call.clone()) } else { None }).collect()
}

fn error_of(events: &[LlmEvent]) -> &ringlypro::providers::ProviderError {
    match events.last() {
        Some(LlmEvent::Error(e)) => e,
        other => panic!("expected the stream to end with an error, got {other:?} in {events:?}"),
    }
}

#[tokio::test]
async fn text_streams_as_several_deltas_then_done_with_stop() {
    let fake = FakeOpenAi::start().await;
    let reply = "Hello, thanks for calling Bella's Salon. How can I help you today?";
    fake.push(Script::text(reply).first_token_delay(Duration::from_millis(20)).tokens_per_second(200));
    let events = collect(client(fake.config()).stream(request("Hi"))).await;
    let deltas = events.iter().filter(|e| matches!(e, LlmEvent::Delta(_))).count();
    assert!(deltas > 5, "expected the text in many deltas, got {deltas}");
    assert_eq!(text_of(&events), reply);
    assert_eq!(events.last(), Some(&LlmEvent::Done { finish_reason: "stop".into() }));
}

#[tokio::test]
async fn the_first_delta_arrives_before_the_rest_of_the_reply_is_sent() {
    let fake = FakeOpenAi::start().await;
    fake.push(
        Script::text("one two three four five six seven eight").first_token_delay(Duration::ZERO).tokens_per_second(10),
    );
    let started = Instant::now();
    let mut events = client(fake.config()).stream(request("Hi"));
    let first = tokio::time::timeout(PATIENCE, events.recv()).await.unwrap();
    assert!(matches!(first, Some(LlmEvent::Delta(_))), "{first:?}");
    // The whole reply takes about a second at 10 chunks per second.
    assert!(started.elapsed() < Duration::from_millis(500), "first delta after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_tool_call_split_across_many_chunks_is_assembled_exactly() {
    let fake = FakeOpenAi::start().await;
    let arguments =
        json!({ "date": "2025-03-14", "service": "Coupe \"déluxe\" ✂", "notes": "line1\nline2", "party": 2 });
    fake.push(Script::tool_call("check_availability", arguments.clone()).instant());
    let events = collect(client(fake.config()).stream(request("Can I book Friday?"))).await;
    let calls = calls_of(&events);
    assert_eq!(calls.len(), 1, "{events:?}");
    assert_eq!(calls[0].name, "check_availability");
    assert!(!calls[0].id.is_empty());
    assert_eq!(calls[0].arguments, arguments.to_string());
    assert_eq!(events.last(), Some(&LlmEvent::Done { finish_reason: "tool_calls".into() }));
}

#[tokio::test]
async fn two_tool_calls_are_assembled_separately_by_index_in_order() {
    let fake = FakeOpenAi::start().await;
    let first = json!({ "date": "2025-03-14" });
    let second = json!({ "phone": "+15550100" });
    fake.push(
        Script::tool_call("check_availability", first.clone())
            .and_tool_call("lookup_customer", second.clone())
            .instant(),
    );
    let events = collect(client(fake.config()).stream(request("Book me Friday"))).await;
    let calls = calls_of(&events);
    let got: Vec<_> = calls.iter().map(|c| (c.name.as_str(), c.arguments.clone())).collect();
    assert_eq!(got, vec![("check_availability", first.to_string()), ("lookup_customer", second.to_string())]);
    assert_ne!(calls[0].id, calls[1].id);
}

#[tokio::test]
async fn text_before_a_tool_call_is_streamed_before_the_call() {
    let fake = FakeOpenAi::start().await;
    fake.push(
        Script::text("Let me check.").and_tool_call("check_availability", json!({ "date": "2025-03-14" })).instant(),
    );
    let events = collect(client(fake.config()).stream(request("Friday?"))).await;
    let first_call = events.iter().position(|e| matches!(e, LlmEvent::ToolCall(_))).unwrap();
    let last_delta = events.iter().rposition(|e| matches!(e, LlmEvent::Delta(_))).unwrap();
    assert!(last_delta < first_call, "{events:?}");
    assert_eq!(text_of(&events), "Let me check.");
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Availability {
    date: String,
}

#[tokio::test]
async fn invalid_json_arguments_are_delivered_raw_and_parse_arguments_explains() {
    let fake = FakeOpenAi::start().await;
    let broken = r#"{"date": "2025-03-14", "time": 10:30}"#;
    fake.push(Script::tool_call_raw("check_availability", broken).instant());
    let events = collect(client(fake.config()).stream(request("Friday"))).await;
    let calls = calls_of(&events);
    assert_eq!(calls[0].arguments, broken);
    let error = parse_arguments::<Availability>(&calls[0]).unwrap_err();
    assert!(error.contains("check_availability were not valid JSON"), "{error}");
    assert!(error.contains("expected"), "{error}");
}

#[tokio::test]
async fn http_500_and_429_are_retryable_errors() {
    let fake = FakeOpenAi::start().await;
    fake.push(Script::http_500());
    fake.push(Script::http_429());
    let llm = client(fake.config());
    for status in ["500", "429"] {
        let events = collect(llm.stream(request("Hi"))).await;
        assert_eq!(events.len(), 1, "{events:?}");
        let error = error_of(&events);
        assert!(error.retryable, "{error}");
        assert!(error.message.contains(&format!("HTTP {status}")), "{error}");
    }
}

#[tokio::test]
async fn http_401_is_not_retryable() {
    let fake = FakeOpenAi::start().await;
    fake.push(Script::http_401());
    let events = collect(client(fake.config()).stream(request("Hi"))).await;
    let error = error_of(&events);
    assert!(!error.retryable);
    assert_eq!(error.message, "HTTP 401: Incorrect API key provided.");
}

#[tokio::test]
async fn a_wrong_api_key_is_refused_without_retry() {
    let fake = FakeOpenAi::start().await;
    fake.push(Script::text("never sent").instant());
    let config = OpenAiConfig { api_key: "sk-wrong".into(), ..fake.config() };
    let events = collect(client(config).stream(request("Hi"))).await;
    let error = error_of(&events);
    assert!(!error.retryable && error.message.starts_with("HTTP 401"), "{error}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_retryable_timeout_after_the_first_token_timeout() {
    let fake = FakeOpenAi::start().await;
    fake.push(Script::stall());
    let config = OpenAiConfig { first_token_timeout: Duration::from_millis(300), ..fake.config() };
    let started = Instant::now();
    let events = collect(client(config).stream(request("Hi"))).await;
    let error = error_of(&events);
    assert!(error.retryable, "{error}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(2), "gave up after {:?}", started.elapsed());
}

#[tokio::test]
async fn headers_without_a_first_chunk_in_time_are_a_retryable_timeout() {
    let fake = FakeOpenAi::start().await;
    fake.push(Script::text("too late").first_token_delay(Duration::from_secs(5)));
    let config = OpenAiConfig { first_token_timeout: Duration::from_millis(300), ..fake.config() };
    let started = Instant::now();
    let events = collect(client(config).stream(request("Hi"))).await;
    let error = error_of(&events);
    assert!(error.retryable && error.message.contains("first token"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_gap_longer_than_the_idle_timeout_mid_stream_is_a_retryable_error_after_the_text() {
    let fake = FakeOpenAi::start().await;
    fake.push(Script::text("Sure, one moment").instant().then_stall());
    let config = OpenAiConfig { idle_timeout: Duration::from_millis(300), ..fake.config() };
    let events = collect(client(config).stream(request("Hi"))).await;
    assert_eq!(text_of(&events), "Sure, one moment");
    let error = error_of(&events);
    assert!(error.retryable && error.message.contains("no data"), "{error}");
}

#[tokio::test]
async fn garbage_lines_between_chunks_are_skipped() {
    let fake = FakeOpenAi::start().await;
    fake.push(Script::text("We open at nine.").with_garbage().instant());
    fake.push(Script::tool_call("check_availability", json!({ "date": "2025-03-14" })).with_garbage().instant());
    let llm = client(fake.config());
    let events = collect(llm.stream(request("When do you open?"))).await;
    assert_eq!(text_of(&events), "We open at nine.");
    assert_eq!(events.last(), Some(&LlmEvent::Done { finish_reason: "stop".into() }));
    let events = collect(llm.stream(request("Friday?"))).await;
    assert_eq!(calls_of(&events)[0].arguments, r#"{"date":"2025-03-14"}"#);
}

#[tokio::test]
async fn a_response_with_nothing_valid_is_a_fatal_error() {
    let fake = FakeOpenAi::start().await;
    fake.push(Script::raw_sse("data: <html>Welcome to nginx!</html>\n\ndata: {\"oops\n\n").instant());
    let events = collect(client(fake.config()).stream(request("Hi"))).await;
    let error = error_of(&events);
    assert!(!error.retryable && error.message.contains("no valid chunk"), "{error}");
}

#[tokio::test]
async fn a_connection_dropped_mid_stream_is_a_retryable_error() {
    let fake = FakeOpenAi::start().await;
    fake.push(Script::text("Your appointment is").instant().then_drop());
    let events = collect(client(fake.config()).stream(request("Hi"))).await;
    assert_eq!(text_of(&events), "Your appointment is");
    assert!(error_of(&events).retryable);
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let events = collect(client(OpenAiConfig { base_url, ..OpenAiConfig::new("k") }).stream(request("Hi"))).await;
    assert!(error_of(&events).retryable);
}

#[tokio::test]
async fn dropping_the_receiver_closes_the_connection_promptly() {
    let fake = FakeOpenAi::start().await;
    let long = "This reply is long enough to last several seconds at this pace. ".repeat(8);
    fake.push(Script::text(long).first_token_delay(Duration::ZERO).tokens_per_second(50));
    let mut events = client(fake.config()).stream(request("Hi"));
    let first = tokio::time::timeout(PATIENCE, events.recv()).await.unwrap();
    assert!(matches!(first, Some(LlmEvent::Delta(_))));
    assert_eq!(fake.aborted_streams(), 0);
    drop(events);
    assert!(fake.wait_for_aborted_streams(1, Duration::from_secs(1)).await, "the fake kept streaming to nobody");
}

#[tokio::test]
async fn dropping_the_receiver_while_the_model_is_still_thinking_closes_the_connection() {
    let fake = FakeOpenAi::start().await;
    fake.push(Script::text("Too late.").first_token_delay(Duration::from_secs(5)));
    let events = client(fake.config()).stream(request("Hi"));
    let arrived = async {
        while fake.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(PATIENCE, arrived).await.unwrap();
    drop(events);
    // Nothing is being sent, so only a client that watches for the drop closes in time.
    assert!(fake.wait_for_aborted_streams(1, Duration::from_secs(1)).await, "the request outlived its receiver");
}

#[tokio::test]
async fn the_request_body_carries_tools_no_parallel_calls_and_the_tool_history() {
    let fake = FakeOpenAi::start().await;
    fake.push(Script::text("You're booked.").instant());
    let call = ToolCallRequest {
        id: "call_42".into(),
        name: "check_availability".into(),
        arguments: r#"{"date":"2025-03-14"}"#.into(),
    };
    let mut asked = ChatMessage::assistant("");
    asked.content = None;
    asked.tool_calls = vec![call.clone()];
    let mut history = request("Book me Friday");
    history.messages.extend([asked, ChatMessage::tool_result("call_42", r#"["09:00","10:00"]"#)]);
    let config = OpenAiConfig { model: "llama-3.1-8b".into(), ..fake.config() };
    collect(client(config).stream(history)).await;

    let sent = &fake.requests()[0];
    assert_eq!(sent.raw["model"], "llama-3.1-8b");
    assert_eq!(sent.raw["stream"], true);
    assert_eq!(sent.raw["tool_choice"], "auto");
    assert_eq!(sent.raw["parallel_tool_calls"], false);
    assert_eq!(sent.raw["tools"][0]["type"], "function");
    assert_eq!(sent.raw["tools"][0]["function"]["parameters"], check_availability().parameters);
    assert_eq!(sent.tool_names(), vec!["check_availability"]);
    let roles: Vec<&str> = sent.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, vec!["system", "user", "assistant", "tool"]);
    assert_eq!(sent.raw["messages"][2]["content"], Value::Null);
    assert_eq!(sent.messages[2].tool_calls[0].id, "call_42");
    assert_eq!(sent.messages[2].tool_calls[0].arguments, call.arguments);
    assert_eq!(sent.raw["messages"][2]["tool_calls"][0]["type"], "function");
    assert_eq!(sent.messages[3].tool_call_id.as_deref(), Some("call_42"));
    assert_eq!(sent.messages[3].text(), r#"["09:00","10:00"]"#);
}

/// A two-turn booking flow, as a whole-call test would script the fake.
fn booking_responder(request: &ChatRequestJson) -> Script {
    let last = request.last_message();
    match last.map(|m| m.role.as_str()) {
        Some("tool") => Script::text("I have 9, 10 and 11 o'clock on Friday.").instant(),
        _ if request.last_user_text().is_some_and(|t| t.contains("book")) => {
            Script::tool_call("check_availability", json!({ "date": "2025-03-14" })).instant()
        }
        _ => Script::text("How can I help?").instant(),
    }
}

#[tokio::test]
async fn a_responder_lets_the_fake_follow_a_tool_round_trip() {
    let fake = FakeOpenAi::start().await;
    fake.respond_with(booking_responder);
    let llm = client(fake.config());
    let mut history = request("I'd like to book a haircut on Friday");
    let events = collect(llm.stream(history.clone())).await;
    let call = calls_of(&events).remove(0);
    let mut asked = ChatMessage::assistant("");
    asked.content = None;
    asked.tool_calls = vec![call.clone()];
    history.messages.extend([asked, ChatMessage::tool_result(call.id.clone(), r#"["09:00","10:00","11:00"]"#)]);
    let events = collect(llm.stream(history)).await;
    assert_eq!(text_of(&events), "I have 9, 10 and 11 o'clock on Friday.");
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].messages[3].tool_call_id.as_deref(), Some(call.id.as_str()));
}

#[tokio::test]
async fn a_request_with_no_script_left_gets_a_retryable_error() {
    let fake = FakeOpenAi::start().await;
    let events = collect(client(fake.config()).stream(request("Hi"))).await;
    assert!(error_of(&events).retryable);
    assert_eq!(fake.requests().len(), 1);
}
