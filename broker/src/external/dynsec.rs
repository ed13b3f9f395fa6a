//! A client of Mosquitto's dynamic-security plugin: JSON commands published to
//! `$CONTROL/dynamic-security/v1`, answered on `.../v1/response` (which every subscriber of
//! it sees, so answers are matched by the `correlationData` each command carries).

use crate::mqtt::external::ExternalSettings;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

const TOPIC: &str = "$CONTROL/dynamic-security/v1";
const RESPONSE: &str = "$CONTROL/dynamic-security/v1/response";
const TIMEOUT: Duration = Duration::from_secs(10);

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<Value>>>>>;

/// One answered command: its name, `error` if refused, and `data` if it returns any.
#[derive(Debug, Clone)]
pub struct Answer {
    pub command: String,
    pub error: Option<String>,
    pub data: Value,
}

pub struct Dynsec {
    client: AsyncClient,
    waiting: Waiting,
    next: AtomicU64,
}

impl Dynsec {
    /// Connects as the bus principal (client id `<prefix>-dynsec-<random>`: the running
    /// broker and `extbus principal add` each have their own) and subscribes to the answers
    /// before returning.
    pub async fn connect(s: &ExternalSettings) -> Result<Arc<Dynsec>, String> {
        let id = format!(
            "{}-{}",
            s.client_id.replace("-coordinator", "-dynsec"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let o = s.options(&id).map_err(|e| e.to_string())?;
        let (client, mut el) = AsyncClient::new(o, 1024);
        client
            .try_subscribe(RESPONSE, QoS::AtLeastOnce)
            .map_err(|e| e.to_string())?;
        let ready = async {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        tokio::time::timeout(TIMEOUT, ready)
            .await
            .map_err(|_| "no answer from the broker".to_string())??;
        let waiting: Waiting = Arc::default();
        tokio::spawn(drive(el, client.clone(), waiting.clone()));
        Ok(Arc::new(Dynsec {
            client,
            waiting,
            next: AtomicU64::new(1),
        }))
    }

    /// Sends `commands` in one message and waits for their answers, in order.
    pub async fn run(&self, mut commands: Vec<Value>) -> Result<Vec<Answer>, String> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        for (i, c) in commands.iter_mut().enumerate() {
            c["correlationData"] = json!(format!("{n}.{i}"));
        }
        let (tx, rx) = oneshot::channel();
        self.lock().insert(n, tx);
        let body = serde_json::to_vec(&json!({ "commands": commands })).unwrap_or_default();
        if let Err(e) = self
            .client
            .publish(TOPIC, QoS::AtLeastOnce, false, body)
            .await
        {
            self.lock().remove(&n);
            return Err(e.to_string());
        }
        let answers = match tokio::time::timeout(TIMEOUT, rx).await {
            Ok(Ok(a)) => a,
            _ => {
                self.lock().remove(&n);
                return Err(format!(
                    "no answer on {RESPONSE} within {TIMEOUT:?} (is the dynamic-security plugin loaded, and may bus.user use {TOPIC}?)"
                ));
            }
        };
        Ok(answers
            .into_iter()
            .map(|a| Answer {
                command: a["command"].as_str().unwrap_or_default().to_string(),
                error: a["error"].as_str().map(str::to_string),
                data: a["data"].clone(),
            })
            .collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Vec<Value>>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The request number of an answer's `correlationData` (`<n>.<i>`).
fn request_of(answer: &Value) -> Option<u64> {
    answer["correlationData"]
        .as_str()?
        .split('.')
        .next()?
        .parse()
        .ok()
}

async fn drive(mut el: EventLoop, client: AsyncClient, waiting: Waiting) {
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Ok(v) = serde_json::from_slice::<Value>(&p.payload) else {
                    continue;
                };
                let answers = v["responses"].as_array().cloned().unwrap_or_default();
                let Some(n) = answers.first().and_then(request_of) else {
                    continue;
                };
                let tx = waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&n);
                if let Some(tx) = tx {
                    let _ = tx.send(answers);
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // A clean session each time: subscribe again.
                let _ = client.try_subscribe(RESPONSE, QoS::AtLeastOnce);
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
