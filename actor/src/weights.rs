//! Following the learner's weights: a background task holds a `Weights` stream open,
//! reassembles each version from its checksummed chunks and offers the newest intact one;
//! the actor loads it between groups. The stream reconnects with backoff when it breaks.

use std::sync::Arc;
use std::time::Duration;

use empo2_proto::auth::AuthChannel;
use empo2_proto::learner::v1 as pb;
use empo2_proto::learner::v1::learner_client::LearnerClient;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use trajectory::{Assembler, Published};

use crate::backoff::Backoff;

/// The newest intact version received, if any.
pub type Newest = watch::Receiver<Option<Arc<Published>>>;

/// Starts following the weights of the learner behind `client`; the task ends when every
/// receiver is dropped.
pub fn follow(client: LearnerClient<AuthChannel>) -> Newest {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(run(client, tx));
    rx
}

async fn run(mut client: LearnerClient<AuthChannel>, tx: watch::Sender<Option<Arc<Published>>>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while !tx.is_closed() {
        let have = tx.borrow().as_ref().map_or(0, |p| p.version);
        match client
            .weights(pb::WeightsRequest { have_version: have })
            .await
        {
            Ok(response) => {
                let mut stream = response.into_inner();
                let mut assembler = Assembler::default();
                loop {
                    let chunk = tokio::select! {
                        chunk = stream.next() => chunk,
                        () = tx.closed() => return,
                    };
                    match chunk {
                        Some(Ok(chunk)) => match assembler.push(chunk) {
                            Ok(Some(published)) => {
                                tracing::info!(
                                    version = published.version,
                                    bytes = published.bytes.len(),
                                    "weights received"
                                );
                                tx.send_replace(Some(Arc::new(published)));
                                backoff.reset();
                            }
                            Ok(None) => {}
                            Err(err) => {
                                tracing::warn!(%err, "weights stream corrupt; resubscribing");
                                break;
                            }
                        },
                        Some(Err(status)) => {
                            tracing::warn!(%status, "weights stream broke; resubscribing");
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(status) => tracing::debug!(%status, "cannot subscribe to weights yet"),
        }
        tokio::time::sleep(backoff.wait()).await;
    }
}
