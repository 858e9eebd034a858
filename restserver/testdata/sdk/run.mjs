// Drives the official Upstash SDK (npm @upstash/kafka, pinned by
// package-lock.json) against a kafkarpc REST server. Run by restserver's Go
// test TestUpstashSDK, which starts the server and passes, in env:
// UPSTASH_KAFKA_REST_URL, UPSTASH_KAFKA_REST_USERNAME,
// UPSTASH_KAFKA_REST_PASSWORD, SDK_TOPIC (3 partitions), SDK_TOPIC2 (1).
// Prints "ok - <step>" per step and "all SDK checks passed" at the end; any
// failure throws and exits non-zero.
import assert from "node:assert/strict";
import { Kafka, UpstashError } from "@upstash/kafka";

const url = process.env.UPSTASH_KAFKA_REST_URL;
const username = process.env.UPSTASH_KAFKA_REST_USERNAME;
const password = process.env.UPSTASH_KAFKA_REST_PASSWORD;
const topic = process.env.SDK_TOPIC;
const topic2 = process.env.SDK_TOPIC2;
assert.ok(url && username && password && topic && topic2, "missing env");

const kafka = new Kafka({ url, username, password });
const admin = kafka.admin();
const producer = kafka.producer();
const consumer = kafka.consumer();

// The SDK retries every failed request 5 more times with backoff (0.5 s to
// 8 s, 15.5 s in all) before rejecting. For the checks that expect a
// rejection, turn retries off on that client (SDK internals: HttpClient's
// request(method, req) honours req.retries).
function withoutRetries(k) {
  const c = k.client;
  const request = c.request.bind(c);
  c.request = (method, req) => request(method, { ...req, retries: 0 });
  return k;
}

async function rejects(promise, status) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof UpstashError, `expected UpstashError, got ${err}`);
    assert.equal(err.status, status, `status of ${err.message}`);
    assert.ok(err.error.length > 0);
    return true;
  });
}

async function step(name, fn) {
  await fn();
  console.log(`ok - ${name}`);
}

const group = "sdk-group";
const instance = "sdk-instance";
let first; // the produce() response
let consumed = [];

await step("admin.topics", async () => {
  const topics = await admin.topics();
  assert.equal(topics[topic], 3);
  assert.equal(topics[topic2], 1);
});

await step("producer.produce (single object → res[0])", async () => {
  first = await producer.produce(topic, { hello: "world" }, {
    key: "k1",
    partition: 0,
    headers: [{ key: "h", value: "v" }],
  });
  assert.equal(first.topic, topic);
  assert.equal(first.partition, 0);
  assert.equal(first.offset, 0);
  assert.ok(first.timestamp > 1_600_000_000_000, "timestamp in ms");
});

await step("producer.produceMany (order kept)", async () => {
  const res = await producer.produceMany([
    { topic, value: "plain", partition: 2 },
    { topic: topic2, value: { n: 1 }, key: "k2" },
  ]);
  assert.equal(res.length, 2);
  assert.deepEqual([res[0].topic, res[0].partition], [topic, 2]);
  assert.equal(res[1].topic, topic2);
});

await step("consumer.consume with the SDK tests' retry loop", async () => {
  // As in the SDK's own tests: retry up to 30 times until the messages show
  // up (our server answers on the first try, long-polling up to timeout).
  for (let i = 0; i < 30 && consumed.length < 2; i++) {
    const msgs = await consumer.consume({
      consumerGroupId: group,
      instanceId: instance,
      topics: [topic],
      autoOffsetReset: "earliest",
      autoCommit: false,
      timeout: 1000,
    });
    consumed.push(...msgs);
  }
  assert.equal(consumed.length, 2);
  const m = consumed.find((x) => x.key === "k1");
  assert.ok(m, "keyed message consumed");
  assert.equal(m.value, JSON.stringify({ hello: "world" }));
  assert.deepEqual(m.headers, [{ key: "h", value: "v" }]);
  assert.equal(m.offset, first.offset);
  assert.equal(m.partition, first.partition);
  const plain = consumed.find((x) => x.value === "plain");
  assert.equal(plain.key, "");
  assert.deepEqual(plain.headers, []);
});

await step("consumer.consume of several topics ({topics} body)", async () => {
  let got = [];
  for (let i = 0; i < 30 && got.length < 3; i++) {
    got.push(
      ...(await consumer.consume({
        consumerGroupId: "sdk-multi",
        instanceId: "m1",
        topics: [topic, topic2],
        autoOffsetReset: "earliest",
        timeout: 1000,
      })),
    );
  }
  assert.deepEqual(got.map((x) => x.topic).sort(), [topic, topic, topic2].sort());
});

await step("consumer.commit offset + consumer.committed (stored as given)", async () => {
  const m = consumed.find((x) => x.key === "k1");
  await consumer.commit({
    consumerGroupId: group,
    instanceId: instance,
    offset: { topic, partition: m.partition, offset: m.offset },
  });
  const committed = await consumer.committed({
    consumerGroupId: group,
    instanceId: instance,
    topicPartitions: [{ topic, partition: m.partition }],
  });
  assert.deepEqual(committed, [{ topic, partition: m.partition, offset: m.offset }]);
});

await step("consumer.commit() without offset (no body) commits positions", async () => {
  await consumer.commit({ consumerGroupId: group, instanceId: instance });
  const res = await admin.committedOffsets({
    consumerGroupId: group,
    instanceId: instance,
    topicPartition: { topic, partition: 2 },
  });
  const last = Math.max(...consumed.filter((x) => x.partition === 2).map((x) => x.offset));
  assert.deepEqual(res, [{ topic, partition: 2, offset: last + 1 }]);
});

await step("consumer.fetch (parallel default, and one request)", async () => {
  const one = await consumer.fetch({ topic, partition: first.partition, offset: first.offset, timeout: 1000 });
  assert.equal(one[0].value, JSON.stringify({ hello: "world" }));
  const both = await consumer.fetch({
    topic: topic2,
    partition: 0,
    offset: 0,
    topicPartitionOffsets: [{ topic, partition: 2, offset: 0 }],
    timeout: 1000,
  });
  assert.deepEqual(both.map((x) => x.value).sort(), ["plain", '{"n":1}']);
  const single = await consumer.fetch(
    { topic: topic2, partition: 0, offset: 0, topicPartitionOffsets: [{ topic, partition: 2, offset: 0 }], timeout: 1000 },
    { parallel: false },
  );
  assert.deepEqual(single.map((x) => x.value), ['{"n":1}', "plain"]);
});

await step("admin.topicPartitionOffsets (earliest, latest, ms, seconds)", async () => {
  const tps = [{ topic, partition: 2 }];
  assert.deepEqual(await admin.topicPartitionOffsets({ timestamp: "earliest", topicPartitions: tps }), [
    { topic, partition: 2, offset: 0 },
  ]);
  assert.deepEqual(await admin.topicPartitionOffsets({ timestamp: "latest", topicPartition: tps[0] }), [
    { topic, partition: 2, offset: 1 },
  ]);
  assert.deepEqual(await admin.topicPartitionOffsets({ timestamp: Date.now() + 60_000, topicPartitions: tps }), [
    { topic, partition: 2, offset: 1 },
  ]);
  const hourAgoSeconds = Math.floor(Date.now() / 1000) - 3600;
  assert.deepEqual(await admin.topicPartitionOffsets({ timestamp: hourAgoSeconds, topicPartitions: tps }), [
    { topic, partition: 2, offset: 0 },
  ]);
});

await step("admin.consumers", async () => {
  const groups = await admin.consumers();
  const g = groups.find((x) => x.name === group);
  assert.ok(g, JSON.stringify(groups));
  assert.deepEqual(g.instances, [{ name: instance, topics: [{ topic, partitions: [0, 1, 2] }] }]);
});

await step("admin.removeConsumerInstance, then again → 404", async () => {
  await admin.removeConsumerInstance(group, instance);
  const groups = await admin.consumers();
  assert.equal(groups.find((x) => x.name === group), undefined);
  await rejects(withoutRetries(new Kafka({ url, username, password })).admin().removeConsumerInstance(group, instance), 404);
});

await step("wrong password → 401 UpstashError", async () => {
  const bad = withoutRetries(new Kafka({ url, username, password: password + "x" }));
  await rejects(bad.admin().topics(), 401);
  await rejects(bad.producer().produce(topic, "x"), 401);
});

await step("unknown topic → 404 UpstashError", async () => {
  await rejects(withoutRetries(new Kafka({ url, username, password })).producer().produce("no-such-topic", "x"), 404);
});

console.log("all SDK checks passed");
