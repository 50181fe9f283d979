//! NestJS's wire over NATS: the SDK's `send` and `emit` with `wire = "nestjs"` against
//! async-nats carrying the same NestJS packets (`{pattern, data, id}`), answered by a raw
//! responder that reads the packet and writes NestJS's reply (`{response, isDisposed,
//! id}`), as a NestJS service does; the raw caller reads the reply packet too.

use futures_util::StreamExt;
use sdk_messaging::{Messaging, MessagingConfig, TransportKind, Wire};
use serde_json::{json, Value};

use super::{id, op, payload, reachable, sdk_ops, Op, Ops};

/// A NestJS request packet to `pattern`.
fn request(pattern: &str) -> Vec<u8> {
    let id = format!("{:032x}", fastrand::u128(..));
    let packet = json!({ "pattern": pattern, "data": payload(), "id": id });
    serde_json::to_vec(&packet).unwrap_or_default()
}

/// Answers every NestJS request on `subject` with its data, as NestJS writes a reply.
async fn responder(raw: &async_nats::Client, subject: String) {
    let mut requests = raw
        .queue_subscribe(subject, "raw".into())
        .await
        .expect("subscribe");
    let replier = raw.clone();
    tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            let Some(reply_to) = message.reply else {
                continue;
            };
            let packet: Value = serde_json::from_slice(&message.payload).unwrap_or_default();
            let reply =
                json!({ "response": packet["data"], "isDisposed": true, "id": packet["id"] });
            let bytes = serde_json::to_vec(&reply).unwrap_or_default();
            let _ = replier.publish(reply_to, bytes.into()).await;
        }
    });
}

fn raw_send(raw: &async_nats::Client, subject: String) -> Op {
    let client = raw.clone();
    op(move || {
        let (client, subject) = (client.clone(), subject.clone());
        async move {
            let packet = request(&subject);
            let answer = client
                .request(subject, packet.into())
                .await
                .expect("raw request");
            let reply: Value = serde_json::from_slice(&answer.payload).expect("a reply packet");
            assert!(reply["response"].is_object(), "{reply}");
        }
    })
}

fn raw_emit(raw: &async_nats::Client, subject: String) -> Op {
    let client = raw.clone();
    op(move || {
        let (client, subject) = (client.clone(), subject.clone());
        async move {
            let packet = json!({ "pattern": subject, "data": payload() });
            let bytes = serde_json::to_vec(&packet).unwrap_or_default();
            client
                .publish(subject, bytes.into())
                .await
                .expect("publish");
            client.flush().await.expect("flush");
        }
    })
}

pub(super) async fn nestjs_nats() -> Option<Ops> {
    if !reachable("127.0.0.1:4222").await {
        return None;
    }
    let id = id();
    let config =
        MessagingConfig::new(TransportKind::Nats, "nats://127.0.0.1:4222").wire(Wire::NestJs);
    let messaging = Messaging::connect("bench", &config).await.expect("nats");
    let (sdk_send, sdk_emit, server) = sdk_ops(&messaging, &format!("bn{id}")).await;
    let raw = async_nats::connect("127.0.0.1:4222").await.expect("nats");
    responder(&raw, format!("rawn{id}.echo")).await;
    Some(Ops {
        transport: "NATS, NestJS wire",
        key: "nestjs-nats",
        sdk_send,
        raw_send: raw_send(&raw, format!("rawn{id}.echo")),
        sdk_emit,
        raw_emit: raw_emit(&raw, format!("rawn{id}.placed")),
        raw_emit_alike: None,
        raw_send_alike: None,
        _keep: vec![Box::new(messaging), Box::new(server), Box::new(raw)],
    })
}
