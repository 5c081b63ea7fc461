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
        // Asking by SHA-256: whatever the learner's newest weights are, the actor gets them,
        // even when their version is below the one it holds (a learner resumed from an older
        // checkpoint) or they belong to another run.
        let request = match tx.borrow().as_ref() {
            Some(p) => pb::WeightsRequest {
                have_version: p.version,
                have_sha256: p.sha256.to_vec(),
                have_learner_instance: p.learner_instance.clone(),
            },
            None => pb::WeightsRequest::default(),
        };
        match client.weights(request).await {
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
                                if let Some(held) = tx.borrow().as_ref()
                                    && (held.run_id != published.run_id
                                        || held.version > published.version)
                                {
                                    tracing::warn!(
                                        held_run = %held.run_id, held_version = held.version,
                                        run = %published.run_id, version = published.version,
                                        "the learner's weights replace those held (another run, or a resume from an older checkpoint)"
                                    );
                                }
                                tracing::info!(
                                    version = published.version,
                                    run = %published.run_id,
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
