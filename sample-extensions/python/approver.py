#!/usr/bin/env python3
"""The approver sample in Python (paho-mqtt >= 2): registers a callout rule for vm.create,
then resumes small requests and aborts large ones with the reason. Same policy as
src/approver.rs; shows that any MQTT 5 client in any language can be an extbus extension.

It also owns an entity type, urn:extbus:type:acme:vm-request:1.0.0, with a pre_update hook:
the broker holds every update of such an entity until this script answers the hook's task
(operation vm-request.pre-update). The same policy applies: a small proposal is resumed with
result.entity (the proposal stamped with approved_by, which replaces the content), a large one
is aborted with the reason, and the update is refused.

    pip install 'paho-mqtt>=2'
    python3 sample-extensions/python/approver.py --url mqtt://127.0.0.1:1883 \
        --user extension --secret extension
"""
import argparse
import itertools
import json
import sys
import threading
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

MAX_CPU, MAX_MEMORY_GB = 8, 32
HOOK = "vm-request.pre-update"
VM_REQUEST_TYPE = {
    "vendor": "acme", "nss": "vm-request", "version": "1.0.0", "name": "VM request",
    "schema": {"type": "object", "properties": {
        "cpu": {"type": "integer", "minimum": 1}, "memory_gb": {"type": "integer", "minimum": 1},
        "approved_by": {"type": "string"}}},
    "hooks": {"pre_update": True},
    "access": {"read": ["platform", "operator", "extension"], "write": ["platform", "extension"]},
}


def decide(task):
    """('resume', body) for a small request, ('abort', body) with the reason otherwise."""
    data = task.get("data") or {}
    cpu, mem = data.get("cpu", 1), data.get("memory_gb", 1)
    if cpu > MAX_CPU:
        return "abort", {"message": f"{cpu} CPUs exceed the limit of {MAX_CPU}"}
    if mem > MAX_MEMORY_GB:
        return "abort", {"message": f"{mem} GB of memory exceed the limit of {MAX_MEMORY_GB} GB"}
    return "resume", {"message": f"approved: {cpu} CPUs, {mem} GB", "result": {"approved_by": "approver.py"}}


def decide_update(task):
    """The pre_update hook: the same policy on the proposed content; an approved proposal
    comes back as result.entity, stamped, and replaces the content."""
    proposed = task["data"]["update"]["entity"]
    action, body = decide({"data": proposed})
    if action == "resume":
        body["result"] = {"entity": dict(proposed, approved_by="approver.py")}
    return action, body


class Approver:
    def __init__(self, args):
        url = urlparse(args.url)
        self.user, self.operation = args.user, args.operation
        self.ids = itertools.count()
        self.replies = {}  # correlation id -> (event, reply)
        self.connected, self.refused = threading.Event(), None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(args.user, args.secret)
        self.client.on_connect = self.on_connect
        self.client.on_message = self.on_message
        try:
            self.client.connect(url.hostname or "127.0.0.1", url.port or 1883)
        except OSError as e:
            sys.exit(f"approver.py: cannot reach {args.url}: {e}")
        self.client.loop_start()
        if not self.connected.wait(15):
            sys.exit(f"approver.py: no answer from {args.url}")
        if self.refused:
            sys.exit(f"approver.py: {args.url} refused {self.user}: {self.refused}")

    def topics(self):
        return [f"extbus/out/{self.user}/replies",
                "extbus/tasks/blocked/" + self.operation.replace(".", "/", 1),
                "extbus/tasks/blocked/" + HOOK.replace(".", "/", 1)]

    def on_connect(self, client, userdata, flags, reason_code, properties):
        """Subscribes on every (re)connect: the broker keeps no subscriptions for us."""
        if reason_code.is_failure:
            self.refused = str(reason_code)
            client.disconnect()
        else:
            for topic in self.topics():
                client.subscribe(topic, qos=1)
        self.connected.set()

    def command(self, suffix, body, timeout=15):
        """Publishes under our inbox with a correlation id and waits for the reply."""
        corr = f"{self.user}-py-{next(self.ids)}"
        done = threading.Event()
        self.replies[corr] = [done, None]
        body = dict(body, correlation_id=corr)
        self.client.publish(f"extbus/in/{self.user}/{suffix}", json.dumps(body), qos=1)
        if not done.wait(timeout):
            raise TimeoutError(f"no reply to {suffix}")
        reply = self.replies.pop(corr)[1]
        if not reply.get("ok"):
            raise RuntimeError(f"{reply['error']['code']}: {reply['error']['message']}")
        return reply["result"]

    def on_message(self, client, userdata, msg):
        payload = json.loads(msg.payload or b"null")
        if msg.topic == f"extbus/out/{self.user}/replies":
            waiting = self.replies.get(payload.get("correlation_id"))
            if waiting:
                waiting[1] = payload
                waiting[0].set()
        else:
            # Answer off the network thread: command() waits for a reply that thread delivers.
            threading.Thread(target=self.handle, args=(payload,), daemon=True).start()

    def handle(self, task):
        stage = task.get("stage", 0)
        stages = task.get("stages") or []
        if task.get("state") != "blocked" or stage >= len(stages) or self.user not in stages[stage]:
            return
        action, body = decide_update(task) if task.get("operation") == HOOK else decide(task)
        try:
            self.command(f"tasks/{task['id']}/{action}", body)
            print(f"{action} task {task['id']} ({task.get('subject')})", flush=True)
        except Exception as e:  # a renotify of a task resolved meanwhile is refused: fine
            print(f"task {task['id']}: {e}", file=sys.stderr)

    def run(self):
        # Our own component: other programs under the same principal keep their registrations.
        self.command("register", {"component": "approver-py",
                                  "rules": [{"operation": self.operation, "priority": 60,
                                             "timeout_ms": 300000, "default_action": "abort"}],
                                  "entity_types": [VM_REQUEST_TYPE]})
        # The type's hook is our operation now: subscribe again, the first try was refused.
        self.client.subscribe("extbus/tasks/blocked/" + HOOK.replace(".", "/", 1), qos=1)
        # Tasks that were already waiting before we started.
        for op in (self.operation, HOOK):
            for task in self.command("tasks/query", {"state": "blocked", "operation": op})["tasks"]:
                self.handle(task)
        # Flushed: when stdout is a pipe or a log file, Python buffers it in blocks.
        print(f"approver.py: answering {self.operation} as {self.user}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="mqtt://127.0.0.1:1883")
    p.add_argument("--user", default="extension")
    p.add_argument("--secret", default="extension")
    p.add_argument("--operation", default="vm.create")
    Approver(p.parse_args()).run()
