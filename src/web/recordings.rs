//! Serving a call's recording to the dashboard's `<audio>` element: the Ogg Opus bytes
//! with their length, and single byte ranges so the player can seek. Scoped to one tenant;
//! who that tenant is comes from the caller of [`serve`], never from the request.

use axum::body::{Body, HttpBody as _};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sqlx::PgPool;

use crate::domain::ids::TenantId;
use crate::storage::postgres::{calls, recordings};
use crate::web::Error;

/// Answers a request for the recording of call `call_sid`, as tenant `client_id` sees it:
/// 200 with the whole stream, 206 for a `Range: bytes=…` request, 416 for a range past the
/// end, 404 when the tenant has no such call or the call was not recorded.
///
/// Not routed on its own: it trusts `client_id`. Wire it behind the signed-in owner's
/// extractor, for example
/// `.route("/api/calls/{call_sid}/recording", get(|owner: Owner, State(app): State<WebState>,
/// Path(sid): Path<String>, headers: HeaderMap| async move {
/// recordings::serve(&app.pool, owner.client_id, &sid, &headers).await }))`.
pub async fn serve(pool: &PgPool, client_id: TenantId, call_sid: &str, headers: &HeaderMap) -> Response {
    match find(pool, client_id, call_sid).await {
        Ok(recording) => respond(recording, headers.get(header::RANGE)),
        Err(e) => e.into_response(),
    }
}

async fn find(pool: &PgPool, client_id: TenantId, call_sid: &str) -> Result<recordings::Recording, Error> {
    let missing = || Error::NotFound(format!("no recording for call {call_sid}"));
    // Another tenant's call answers exactly as a missing one does.
    let call = calls::find_by_sid(pool, call_sid).await?.filter(|c| c.client_id == client_id).ok_or_else(missing)?;
    recordings::find_for_call(pool, client_id, call.id).await?.ok_or_else(missing)
}

fn respond(recording: recordings::Recording, range: Option<&HeaderValue>) -> Response {
    let len = recording.bytes.len() as u64;
    let requested = range.and_then(|v| v.to_str().ok()).map(|v| byte_range(v, len)).unwrap_or(ByteRange::Whole);
    let mut response = match requested {
        ByteRange::Whole => (StatusCode::OK, recording.bytes).into_response(),
        ByteRange::Part { first, last } => {
            let part = recording.bytes[first as usize..=last as usize].to_vec();
            let mut r = (StatusCode::PARTIAL_CONTENT, part).into_response();
            insert(&mut r, header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"));
            r
        }
        ByteRange::Unsatisfiable => {
            let mut r = (StatusCode::RANGE_NOT_SATISFIABLE, Body::empty()).into_response();
            insert(&mut r, header::CONTENT_RANGE, format!("bytes */{len}"));
            return r;
        }
    };
    let body_len = response.body().size_hint().exact().unwrap_or(len);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    let content_type =
        HeaderValue::from_str(&recording.content_type).unwrap_or(HeaderValue::from_static(recordings::CONTENT_TYPE));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // A caller's voice: never kept by shared caches.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    response
}

fn insert(response: &mut Response, name: header::HeaderName, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(name, value);
    }
}

/// What part of a `len`-byte body a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// No usable range (absent, malformed, several ranges, another unit): the whole body.
    Whole,
    /// Bytes `first..=last`, both within the body.
    Part { first: u64, last: u64 },
    /// A well-formed range that lies past the end.
    Unsatisfiable,
}

/// Reads a single `bytes=` range (RFC 9110 §14.1.2): `a-b`, `a-` or the suffix `-n`.
/// Anything else is ignored, as the RFC allows, and the whole body is served.
fn byte_range(header: &str, len: u64) -> ByteRange {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return ByteRange::Whole };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return ByteRange::Whole };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), number(first), number(last)) {
        // The last n bytes.
        (true, _, Some(0)) => ByteRange::Unsatisfiable,
        (true, _, Some(_)) if len == 0 => ByteRange::Unsatisfiable,
        (true, _, Some(n)) => ByteRange::Part { first: len.saturating_sub(n), last: len - 1 },
        (false, Some(first), _) if first >= len => ByteRange::Unsatisfiable,
        (false, Some(first), None) if last.trim().is_empty() => ByteRange::Part { first, last: len - 1 },
        (false, Some(first), Some(last)) if last >= first => ByteRange::Part { first, last: last.min(len - 1) },
        _ => ByteRange::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_byte_ranges_are_read_as_the_rfc_says() {
        assert_eq!(byte_range("bytes=0-99", 1000), ByteRange::Part { first: 0, last: 99 });
        assert_eq!(byte_range("bytes=500-", 1000), ByteRange::Part { first: 500, last: 999 });
        assert_eq!(byte_range("bytes=-100", 1000), ByteRange::Part { first: 900, last: 999 });
        assert_eq!(byte_range("bytes=-5000", 1000), ByteRange::Part { first: 0, last: 999 });
        assert_eq!(byte_range("bytes=900-5000", 1000), ByteRange::Part { first: 900, last: 999 });
        assert_eq!(byte_range(" bytes= 10 - 20 ", 1000), ByteRange::Part { first: 10, last: 20 });
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        assert_eq!(byte_range("bytes=1000-", 1000), ByteRange::Unsatisfiable);
        assert_eq!(byte_range("bytes=2000-3000", 1000), ByteRange::Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 1000), ByteRange::Unsatisfiable);
        assert_eq!(byte_range("bytes=0-", 0), ByteRange::Unsatisfiable);
        assert_eq!(byte_range("bytes=-10", 0), ByteRange::Unsatisfiable);
    }

    #[test]
    fn odd_or_multiple_ranges_fall_back_to_the_whole_body() {
        for header in ["", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=20-10", "items=0-1", "bytes=0-1,5-9"] {
            assert_eq!(byte_range(header, 1000), ByteRange::Whole, "{header:?}");
        }
    }
}
