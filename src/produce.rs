//! `auditlake produce`: publishes audit log files to a Kafka topic, one message per event
//! (`EventList` items split, NDJSON line by line), keyed by `auditID`, for demos, tests and moving
//! file archives into a Kafka-fed deployment.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context, bail};
use auditlake_ingest::Input;
use auditlake_ingest::kafka::{CLUSTER_HEADER, client_config, messages_of};
use auditlake_ingest::lines::{Document, for_each_document};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::cli::ProduceArgs;

/// Messages awaiting delivery at once, at most.
const IN_FLIGHT: usize = 10_000;

pub fn run(args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let mut options = vec![
        ("compression.type".to_string(), args.compression.clone()),
        ("linger.ms".to_string(), "20".to_string()),
        ("enable.idempotence".to_string(), "true".to_string()),
    ];
    options.extend(args.kafka_options.iter().cloned());
    let producer: FutureProducer = client_config(&args.kafka_brokers, &options)
        .create()
        .context("creating the Kafka producer")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let headers = args.cluster.as_deref().map(|cluster| {
        OwnedHeaders::new().insert(Header {
            key: CLUSTER_HEADER,
            value: Some(cluster),
        })
    });
    let mut sent = 0u64;
    let mut rejected = 0u64;
    let mut deliveries = Vec::new();
    let mut failed: Option<String> = None;
    for path in &args.files {
        let input = Input::from_arg(path);
        let name = input.display_name();
        let mut reader = input
            .open(Arc::new(AtomicU64::new(0)))
            .with_context(|| format!("cannot read {name}"))?;
        let mut messages = Vec::new();
        for_each_document(&mut reader, |doc| match doc {
            Document::Json { line, bytes } => match messages_of(bytes) {
                Ok(m) => messages.extend(m),
                Err(reason) => {
                    rejected += 1;
                    eprintln!("auditlake: {name}:{line}: {reason}");
                }
            },
            Document::Invalid { line, reason } => {
                rejected += 1;
                eprintln!("auditlake: {name}:{line}: {reason}");
            }
        })
        .with_context(|| format!("cannot read {name}"))?;
        for message in messages {
            let mut record = FutureRecord::to(&args.kafka_topic).payload(&message.payload);
            if let Some(key) = &message.key {
                record = record.key(key);
            }
            if let Some(h) = &headers {
                record = record.headers(h.clone());
            }
            match producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => bail!("cannot queue a message for {}: {e}", args.kafka_topic),
            }
            sent += 1;
            if deliveries.len() >= IN_FLIGHT {
                await_all(&runtime, &mut deliveries, &mut failed);
            }
        }
    }
    await_all(&runtime, &mut deliveries, &mut failed);
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the Kafka producer")?;
    if let Some(e) = failed {
        bail!("delivering to {} failed: {e}", args.kafka_topic);
    }
    eprintln!(
        "auditlake: published {sent} messages to {}; {rejected} documents rejected",
        args.kafka_topic
    );
    Ok(if rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn await_all(
    runtime: &tokio::runtime::Runtime,
    deliveries: &mut Vec<rdkafka::producer::DeliveryFuture>,
    failed: &mut Option<String>,
) {
    for delivery in deliveries.drain(..) {
        match runtime.block_on(delivery) {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => {
                failed.get_or_insert(e.to_string());
            }
            Err(_) => {
                failed.get_or_insert("the producer was dropped".to_string());
            }
        }
    }
}
