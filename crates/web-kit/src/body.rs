//! Streaming glue: Actix's request bodies (which cannot leave their thread) into a writer
//! that wants a sendable stream.

use actix_web::web::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

/// A sendable body, as a writer reads it.
pub type SendBody = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Streams `source` into `write`: pumped through a small bounded channel whose receiving
/// end is the body `write` gets, so memory stays bounded by the channel and the writer's
/// own buffer. A failed chunk ends the body with that error.
pub async fn pump<S, E, W, F, T>(mut source: S, write: W) -> T
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
    W: FnOnce(SendBody) -> F,
    F: std::future::Future<Output = T>,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let pump = async move {
        while let Some(chunk) = source.next().await {
            let item = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    };
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
    let (_, written) = futures_util::join!(pump, write(body));
    written
}
