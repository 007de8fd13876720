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

/// The job-state bucket's backing stream, `KV_fluo-jobs`: the same configuration
/// `create_key_value` would derive (file-backed, 5 revisions of history per job, rollups
/// allowed, direct gets). Built here because async-nats' `create_key_value` first queries
/// account info in a form nats-server 2.9 does not answer, while creating the stream works on
/// every server version.
pub fn bucket_stream_config() -> stream::Config {
    stream::Config {
        name: format!("KV_{}", names::KV_BUCKET),
        description: Some("FLUO job records, one per job id".to_owned()),
        subjects: vec![format!("$KV.{}.>", names::KV_BUCKET)],
        max_messages_per_subject: 5,
        max_age: names::RETENTION,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
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
    js.get_or_create_stream(bucket_stream_config())
        .await
        .map_err(|e| Error::Bucket { source: e.into() })?;
    js.get_key_value(names::KV_BUCKET)
        .await
        .map_err(|e| Error::Bucket { source: e.into() })
}

/// Opens the worker consumer, creating the stream and the consumer if they do not exist.
pub async fn ensure_consumer(
    js: &Context,
    ack_wait: Duration,
) -> Result<consumer::Consumer<consumer::pull::Config>> {
    let stream = ensure_stream(js).await?;
    let wanted = consumer_config(ack_wait);
    let consumer_error = |e: async_nats::Error| Error::Consumer { source: e };
    let mut consumer = stream
        .get_or_create_consumer(names::CONSUMER, wanted.clone())
        .await
        .map_err(|e| consumer_error(e.into()))?;
    let limit = consumer
        .info()
        .await
        .map_err(|e| consumer_error(e.into()))?
        .config
        .max_deliver;
    if limit != wanted.max_deliver {
        // A consumer made by an earlier release (delivery limit 6): the server updates a durable
        // consumer in place when it is created again with editable changes.
        consumer = stream
            .create_consumer(wanted)
            .await
            .map_err(|e| consumer_error(e.into()))?;
    }
    Ok(consumer)
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
    fn the_bucket_stream_is_what_the_kv_api_expects() {
        let config = bucket_stream_config();
        assert_eq!(config.name, "KV_fluo-jobs");
        assert_eq!(config.subjects, vec!["$KV.fluo-jobs.>".to_owned()]);
        // get_key_value refuses a stream without per-subject history.
        assert!(config.max_messages_per_subject >= 1);
        assert!(config.allow_direct && config.allow_rollup && config.deny_delete);
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
