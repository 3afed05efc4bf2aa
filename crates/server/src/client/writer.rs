//! The writer half of a connection: replies go out in request order, collected while the
//! socket is busy so that a client that does not read is noticed at its output limit.

use super::direct::Answer;
use super::*;

impl Connection<'_> {
    /// Writes the replies in request order. It keeps collecting replies while the socket is
    /// busy, so that a client that does not read is noticed and disconnected at the limit
    /// rather than holding replies in the driver's channels.
    pub(super) async fn write_replies(
        &self,
        mut writer: impl AsyncWrite + Unpin,
        mut owed_rx: mpsc::Receiver<Queued>,
        answered: &Answered,
    ) {
        let mut out = BytesMut::with_capacity(16 * 1024);
        let mut charge = Charge::new(self.budget);
        let mut head: Option<Queued> = None;
        let mut more = true;
        let mut closing = false;
        let mut inbox = subscriber::Inbox::default();
        // When the socket last took bytes (or `out` last became non-empty), and a timer that
        // looks at it now and then: one timer for the connection, not one per reply.
        let mut progress_at = tokio::time::Instant::now();
        let send_timer = tokio::time::sleep(SEND_TIMEOUT);
        tokio::pin!(send_timer);
        loop {
            if inbox.fill(&mut out).is_err() {
                return self.subscriber_fell_behind();
            }
            if !self.output_within_limits(&mut charge, &out) {
                return;
            }
            if out.is_empty() && (closing || !more) {
                let _ = writer.shutdown().await;
                return;
            }
            // Write once nothing more is ready: when the next reply is still coming from the
            // driver, wait for it (pipelined replies usually come together), unless enough is
            // already waiting to be worth a write.
            let worth_writing = !out.is_empty()
                && (head.is_none() && owed_rx.is_empty()
                    || out.len() >= 64 * 1024
                    || closing
                    || !more);
            // With nothing of its own to write, the writer lets the driver write the next
            // reply itself.
            let lane = (out.is_empty() && !inbox.is_active()).then_some(&**self.lane);
            tokio::select! {
                // Collect every reply that is ready before writing: pipelined replies share
                // a write.
                biased;
                next = next_owed(&mut head, &mut owed_rx, answered, lane), if more && !closing => {
                    let Some(owed) = next else {
                        more = false;
                        continue;
                    };
                    let Ok(owed) = inbox.receive(owed, &mut out) else {
                        return self.subscriber_fell_behind();
                    };
                    let Some(owed) = owed else {
                        continue;
                    };
                    if out.is_empty() {
                        progress_at = tokio::time::Instant::now();
                    }
                    if buffer_reply(&mut out, owed) {
                        closing = true;
                    }
                    if !self.output_within_limits(&mut charge, &out) {
                        return;
                    }
                }
                written = writer.write(&out), if worth_writing => {
                    if !took_bytes(&mut writer, &mut out, written).await {
                        return;
                    }
                    progress_at = tokio::time::Instant::now();
                    release_burst(&mut out, &mut charge);
                }
                () = inbox.wait() => {}
                // A client that takes no byte of its replies for this long is gone or stuck:
                // its slot and buffers are freed even with no idle timeout set.
                () = &mut send_timer, if !out.is_empty() => {
                    let deadline = progress_at + SEND_TIMEOUT;
                    if tokio::time::Instant::now() < deadline {
                        send_timer.as_mut().reset(deadline);
                        continue;
                    }
                    self.shared.metrics.error("send_timeout");
                    tracing::info!(client = %self.addr, unsent = out.len(), "closing a client that reads none of its replies");
                    return;
                }
            }
        }
    }

    /// Charges the output buffer to the shared memory budget and holds it to the client's
    /// output limit; false, the client disconnected, if it passes either.
    fn output_within_limits(&self, charge: &mut Charge<'_>, out: &BytesMut) -> bool {
        if !charge.hold(out.capacity()) {
            self.over_limit("max_client_memory", out.len());
            return false;
        }
        if out.len() > self.options.max_output_bytes {
            self.over_limit("client_output_limit", out.len());
            return false;
        }
        true
    }
}

/// Appends a reply's RESP to the output; true if it is the last one (the connection closes).
pub(super) fn buffer_reply(out: &mut BytesMut, owed: Owed) -> bool {
    match owed {
        Owed::Now(reply) => resp::write_reply(out, &reply),
        Owed::Simple(text) => resp::write_simple(out, text),
        Owed::Written(rest) => out.extend_from_slice(&rest),
        Owed::Later(_) | Owed::Direct(_) => unreachable!("next_owed resolves later replies"),
        Owed::Subscribed(_) | Owed::Unsubscribed => unreachable!("the inbox takes its markers"),
        Owed::Close(reply) => {
            resp::write_reply(out, &reply);
            return true;
        }
    }
    false
}

/// Drops from `out` what the socket took; once nothing is left, flushes it (TLS may hold the
/// last record back until it is flushed; a no-op on TCP). False if the client is gone, or
/// does not take the flush within the send timeout.
pub(super) async fn took_bytes(
    writer: &mut (impl AsyncWrite + Unpin),
    out: &mut BytesMut,
    written: std::io::Result<usize>,
) -> bool {
    match written {
        Ok(0) | Err(_) => return false,
        Ok(n) => out.advance(n),
    }
    !out.is_empty()
        || matches!(
            tokio::time::timeout(SEND_TIMEOUT, writer.flush()).await,
            Ok(Ok(()))
        )
}

/// Once a burst of large replies is written, gives their memory back.
pub(super) fn release_burst(out: &mut BytesMut, charge: &mut Charge<'_>) {
    if out.is_empty() && out.capacity() > 256 * 1024 {
        *out = BytesMut::with_capacity(16 * 1024);
        charge.hold(out.capacity());
    }
}

/// The next reply owed, in order: waits for the driver's reply if the next one comes from
/// it (naming it on `lane`, when given, for the driver to write itself), counts it answered,
/// and frees its reservation. Cancel-safe: what was taken from the queue stays in `head`.
pub(super) async fn next_owed(
    head: &mut Option<Queued>,
    owed_rx: &mut mpsc::Receiver<Queued>,
    answered: &Answered,
    lane: Option<&direct::ReplyLane>,
) -> Option<Owed> {
    if head.is_none() {
        *head = Some(owed_rx.recv().await?);
    }
    let shutting_down = || Reply::error("ERR the node is shutting down");
    let later = match head {
        Some(Queued {
            owed: Owed::Later(receiver),
            ..
        }) => Some(Answer::Reply(
            receiver.await.unwrap_or_else(|_| shutting_down()),
        )),
        Some(Queued {
            owed: Owed::Direct(pending),
            ..
        }) => {
            if let Some(lane) = lane {
                lane.wait_for(pending.request);
            }
            let answer = (&mut pending.answer)
                .await
                .unwrap_or_else(|_| Answer::Reply(shutting_down()));
            if let (Some(lane), Answer::Reply(_)) = (lane, &answer) {
                lane.stop_waiting();
            }
            Some(answer)
        }
        _ => None,
    };
    let Queued { owed, reserved } = head.take()?;
    answered.release(reserved);
    match later {
        Some(Answer::Reply(reply)) => {
            answered.one_more();
            let (reply, lost) = super::session::explain(reply);
            if lost {
                answered.session_lost.store(true, Ordering::Release);
            }
            Some(Owed::Now(reply))
        }
        Some(Answer::Written(rest)) => {
            answered.one_more();
            Some(Owed::Written(rest))
        }
        None => Some(owed),
    }
}
