//! Streaming glue: Actix's request bodies into a store's write.

use blob_store::{BlobError, BlobInfo, ByteStream};
use futures_util::StreamExt;

/// Streams `source` into `write` (a store's write of a sendable body). Actix's bodies
/// cannot leave their thread, so they are pumped through a small bounded channel whose
/// receiving end is the body `write` gets; memory stays bounded by the channel and the
/// store's part size.
pub(super) async fn pump_into_store<S, E, W, F>(mut source: S, write: W) -> Result<BlobInfo, BlobError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
    W: FnOnce(ByteStream) -> F,
    F: std::future::Future<Output = Result<BlobInfo, BlobError>>,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let pump = async move {
        while let Some(chunk) = source.next().await {
            let item = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    };
    let (_, stored) = futures_util::join!(pump, write(tokio_stream_from(rx)));
    stored
}

fn tokio_stream_from(mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>) -> ByteStream {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
