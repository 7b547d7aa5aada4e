#!/usr/bin/env python3
"""A plain librdkafka producer (confluent-kafka), the baseline of `kafka-produce`.

Sends COUNT messages of SIZE bytes (key KEYLEN bytes) to TOPIC on BROKERS with the settings
callgrid's KafkaLog uses (idempotent, acks=all, linger 2 ms, no compression), waits for every
delivery report, and prints one line: `plain producer: N messages of S bytes in T s: R msg/s`.

    python3 loadtest/kafka/plain_producer.py BROKERS TOPIC COUNT SIZE KEYLEN

Needs `python3 -m pip install confluent-kafka` (its wheel bundles librdkafka).
"""
import sys
import time

from confluent_kafka import Producer


def main() -> int:
    brokers, topic, count, size, keylen = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    p = Producer({
        "bootstrap.servers": brokers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "compression.type": "none",
        "allow.auto.create.topics": False,
    })
    key = b"k" * keylen
    value = b"v" * size
    failed = 0

    def report(err, _msg):
        nonlocal failed
        if err is not None:
            failed += 1

    start = time.monotonic()
    for i in range(count):
        while True:
            try:
                p.produce(topic, value=value, key=key, on_delivery=report)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(60)
    secs = time.monotonic() - start
    if left or failed:
        print(f"plain producer: {left} undelivered, {failed} failed", file=sys.stderr)
        return 1
    print(f"plain producer: {count} messages of {size} bytes in {secs:.2f} s: {count / secs:.0f} msg/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
