//! Idempotent creation of the job stream, the job-state bucket and the worker consumer, so that
//! the BFF and the workers can start in any order and re-create what a wiped NATS lost.

use std::time::Duration;

use async_nats::jetstream::{self, Context, consumer, kv, stream};

use crate::names;

/// What could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not create or open the job stream {}: {source}", names::STREAM)]
    Stream { source: async_nats::Error },
    #[error(
        "could not create or open the job-state bucket {}: {source}",
        names::KV_BUCKET
    )]
    Bucket { source: async_nats::Error },
    #[error(
        "could not create or open the consumer {} on {}: {source}",
        names::CONSUMER,
        names::STREAM
    )]
    Consumer { source: async_nats::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The stream configuration the suite expects: a file-backed work queue.
pub fn stream_config() -> stream::Config {
    stream::Config {
        name: names::STREAM.to_owned(),
        subjects: vec![names::STREAM_SUBJECTS.to_owned()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        max_age: names::RETENTION,
        duplicate_window: names::DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// The job-state bucket configuration: file-backed, a little history for debugging.
pub fn bucket_config() -> kv::Config {
    kv::Config {
        bucket: names::KV_BUCKET.to_owned(),
        description: "FLUO job records, one per job id".to_owned(),
        history: 5,
        max_age: names::RETENTION,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// The durable pull consumer every worker shares. `ack_wait` is how long a delivered job may
/// go without an ack or progress signal before the server redelivers it.
pub fn consumer_config(ack_wait: Duration) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(names::CONSUMER.to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait,
        max_deliver: names::CONSUMER_MAX_DELIVER,
        filter_subject: names::STREAM_SUBJECTS.to_owned(),
        ..Default::default()
    }
}

/// Opens the job stream, creating it if it does not exist.
pub async fn ensure_stream(js: &Context) -> Result<jetstream::stream::Stream> {
    js.get_or_create_stream(stream_config())
        .await
        .map_err(|e| Error::Stream { source: e.into() })
}

/// Opens the job-state bucket, creating it if it does not exist.
pub async fn ensure_bucket(js: &Context) -> Result<kv::Store> {
    if let Ok(store) = js.get_key_value(names::KV_BUCKET).await {
        return Ok(store);
    }
    match js.create_key_value(bucket_config()).await {
        Ok(store) => Ok(store),
        // Another replica may have created it between our get and create.
        Err(create_err) => js
            .get_key_value(names::KV_BUCKET)
            .await
            .map_err(|_| Error::Bucket {
                source: create_err.into(),
            }),
    }
}

/// Opens the worker consumer, creating the stream and the consumer if they do not exist.
pub async fn ensure_consumer(
    js: &Context,
    ack_wait: Duration,
) -> Result<consumer::Consumer<consumer::pull::Config>> {
    let stream = ensure_stream(js).await?;
    stream
        .get_or_create_consumer(names::CONSUMER, consumer_config(ack_wait))
        .await
        .map_err(|e| Error::Consumer { source: e.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_a_durable_work_queue_over_all_job_subjects() {
        let config = stream_config();
        assert_eq!(config.retention, stream::RetentionPolicy::WorkQueue);
        assert_eq!(config.storage, stream::StorageType::File);
        assert_eq!(config.subjects, vec!["fluo.jobs.>".to_owned()]);
    }

    #[test]
    fn the_consumer_acks_explicitly_and_bounds_deliveries() {
        let config = consumer_config(Duration::from_secs(7));
        assert_eq!(config.ack_policy, consumer::AckPolicy::Explicit);
        assert_eq!(config.ack_wait, Duration::from_secs(7));
        assert_eq!(config.max_deliver, names::CONSUMER_MAX_DELIVER);
        assert_eq!(config.durable_name.as_deref(), Some(names::CONSUMER));
    }
}
