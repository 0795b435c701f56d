//! `GET /relay/v1/events`: a brand's feed as Server-Sent Events. Each SSE event's `id:` is the
//! event's sequence in the brand's feed (the same number as the polling cursor) and its `data:`
//! the CloudEvent as JSON; `Last-Event-ID` resumes after it. A comment every 15 seconds keeps
//! proxies from closing a quiet stream; the stream ends when the relay token expires, when the
//! brand is suspended and when the relay shuts down.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt as _};

use super::intents::RelayBrandToken;
use crate::http::serve::ShutdownSignal;
use crate::relay::brands::Scope;
use crate::relay::{Relay, RelayError};

/// The brand's events as SSE, from after `Last-Event-ID` (or from the start of its feed).
pub async fn brand_events(
    State(relay): State<Relay>,
    axum::Extension(shutdown): axum::Extension<ShutdownSignal>,
    token: RelayBrandToken,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, RelayError> {
    let auth = token.require(Scope::IntentsRead)?;
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                RelayError::invalid(
                    "invalid_last_event_id",
                    "Last-Event-ID must be an event id from this stream (a number)",
                    "Last-Event-ID",
                )
            })?,
        None => 0,
    };
    let events = relay
        .live_feed(auth, after)
        .await?
        .map(|(sequence, event)| {
            Ok(SseEvent::default()
                .id(sequence.to_string())
                .data(event.to_string()))
        });
    Ok(Sse::new(events.take_until(shutdown.requested())).keep_alive(KeepAlive::default()))
}
