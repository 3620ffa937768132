//! Watch responses that `close-watches` can end cleanly.
//!
//! A watch is a stream of JSON events, one per line. Ending it between two frames could still cut
//! an event in half (a frame need not end with one), so on `close-watches` the body passes frames on
//! until it stands at the end of a line, and only then ends: the client sees a complete last event
//! and a stream that ends as when the API server closes a watch (for HTTP/1.1, the last chunk).

use futures::{Stream, StreamExt as _};
use http_body_util::{BodyExt as _, BodyStream, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use tokio::sync::watch;

use crate::forward::{BoxError, ProxyBody};

/// Ends watches: each `close-watches` bumps the generation, and every watch body that saw an older
/// one ends.
#[derive(Debug)]
pub struct WatchEnds(watch::Sender<u64>);

impl Default for WatchEnds {
    fn default() -> Self {
        WatchEnds(watch::channel(0).0)
    }
}

impl WatchEnds {
    /// A signal for a watch request arriving now: `close-watches` from now on ends it.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }

    /// `close-watches`
    pub fn end_all(&self) {
        self.0.send_modify(|generation| *generation += 1);
    }
}

/// `upstream` passed on frame by frame until it ends or `end` fires (and a line is complete).
pub fn closable(upstream: Incoming, end: watch::Receiver<u64>) -> ProxyBody {
    let watch = Watch {
        frames: BodyStream::new(upstream),
        end,
        ending: false,
        at_line_end: true,
    };
    StreamBody::new(frames(watch)).boxed_unsync()
}

struct Watch {
    frames: BodyStream<Incoming>,
    end: watch::Receiver<u64>,
    /// `close-watches` has come: end at the next line end.
    ending: bool,
    /// Whether the data passed on so far ends with a whole line (or there is none yet).
    at_line_end: bool,
}

fn frames(watch: Watch) -> impl Stream<Item = Result<Frame<Bytes>, BoxError>> + Send {
    futures::stream::unfold(watch, |mut watch| async move {
        let frame = watch.next_frame().await?;
        Some((frame, watch))
    })
}

impl Watch {
    async fn next_frame(&mut self) -> Option<Result<Frame<Bytes>, BoxError>> {
        loop {
            if self.ending && self.at_line_end {
                return None;
            }
            let frame = if self.ending {
                self.frames.next().await
            } else {
                tokio::select! {
                    frame = self.frames.next() => frame,
                    // Err: the sender is gone with the proxy; ending the watch is right then too.
                    _ = self.end.changed() => {
                        self.ending = true;
                        continue;
                    }
                }
            };
            return match frame? {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref().filter(|data| !data.is_empty()) {
                        self.at_line_end = data.ends_with(b"\n");
                    }
                    Some(Ok(frame))
                }
                Err(error) => Some(Err(error.into())),
            };
        }
    }
}
