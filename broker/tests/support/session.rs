//! A raw rumqttc client for the binary-level tests: sends commands and records their replies
//! by correlation id (no client library between the test and the wire).
#![allow(dead_code)] // not every test binary sends commands

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A client that sends commands and records the replies by correlation id.
pub struct Session {
    pub client: AsyncClient,
    pub name: String,
    pub replies: Arc<Mutex<HashMap<String, Value>>>,
}

pub async fn session(name: &str, port: u16) -> Session {
    let mut o = MqttOptions::new(
        format!("{name}-{}", rand::random::<u32>()),
        "127.0.0.1",
        port,
    );
    o.set_credentials(name, name)
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 4096);
    let replies = Arc::new(Mutex::new(HashMap::new()));
    let r2 = replies.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    client
        .subscribe(format!("extbus/out/{name}/replies"), QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        while let Ok(ev) = el.poll().await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    if let Ok(v) = serde_json::from_slice::<Value>(&p.payload) {
                        if let Some(c) = v["correlation_id"].as_str() {
                            r2.lock().unwrap().insert(c.to_string(), v);
                        }
                    }
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .unwrap()
        .unwrap();
    Session {
        client,
        name: name.to_string(),
        replies,
    }
}

impl Session {
    pub async fn send(&self, suffix: &str, corr: &str, mut body: Value) {
        body["correlation_id"] = corr.into();
        let _ = self
            .client
            .publish(
                format!("extbus/in/{}/{suffix}", self.name),
                QoS::AtLeastOnce,
                false,
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
    }

    pub fn reply(&self, corr: &str) -> Option<Value> {
        self.replies.lock().unwrap().get(corr).cloned()
    }

    pub async fn call(&self, suffix: &str, corr: &str, body: Value) -> Value {
        self.send(suffix, corr, body).await;
        let t = Instant::now();
        loop {
            if let Some(r) = self.reply(corr) {
                return r;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "no reply to {corr}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
