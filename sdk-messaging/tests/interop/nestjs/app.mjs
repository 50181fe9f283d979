// A NestJS microservice (the real @nestjs/microservices, installed by scripts/test), the
// peer of the Rust side in sdk-messaging/tests/it/nestjs.rs. Plain JavaScript: NestJS's
// decorators are applied as the functions they are.
//
//   node app.mjs <redis|nats|rabbitmq|kafka> <url> <prefix>
//
// Handles `<prefix>.nest.*` and calls the Rust side's `<prefix>.rust.*`; prints `ready`
// once it listens. On RabbitMQ it consumes the queue `<prefix>-nest` and sends to the Rust
// side's, `<prefix>-rust`. On Kafka it first creates the topics it reads (its handlers'
// and the reply topics of its calls), as a Kafka deployment's operators would.
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { Controller, Module } from '@nestjs/common';
import {
  ClientProxyFactory,
  EventPattern,
  MessagePattern,
  RpcException,
  Transport,
} from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';

const [transport, url, prefix] = process.argv.slice(2);
const parsed = new URL(url);
const rabbit = (queue) => ({ transport: Transport.RMQ, options: { urls: [url], queue } });
const kafka = {
  transport: Transport.KAFKA,
  options: {
    client: { clientId: prefix, brokers: [parsed.host], logLevel: 1 },
    consumer: { groupId: prefix },
    // The topics are new: reading them from the start loses nothing sent while the
    // consumer groups form.
    subscribe: { fromBeginning: true },
  },
};
const options = {
  redis: { transport: Transport.REDIS, options: { host: parsed.hostname, port: Number(parsed.port) } },
  nats: { transport: Transport.NATS, options: { servers: [url] } },
  rabbitmq: rabbit(`${prefix}-nest`),
  kafka,
}[transport];
const client = ClientProxyFactory.create(transport === 'rabbitmq' ? rabbit(`${prefix}-rust`) : options);
const rust = (name) => `${prefix}.rust.${name}`;
const nest = (name) => `${prefix}.nest.${name}`;
const calls = [rust('double'), rust('refuse')];
const report = (data) => lastValueFrom(client.emit(rust('result'), data));

class Handlers {
  // Rust -> NestJS, request and answer.
  sum(numbers) {
    return numbers.reduce((a, b) => a + b, 0);
  }
  // Rust -> NestJS, a request NestJS refuses.
  reserve(item) {
    throw new RpcException({ statusCode: 409, message: `${item.name} is taken` });
  }
  // Rust -> NestJS, an event; NestJS emits one back to show it arrived.
  async noted(data) {
    await lastValueFrom(client.emit(rust('seen'), data));
  }
  // NestJS -> Rust: a request, and its answer reported as an event.
  async start(data) {
    try {
      // NestJS's Kafka transport reads a bare number back as text.
      const doubled = Number(await lastValueFrom(client.send(rust('double'), data.x)));
      await report({ doubled });
    } catch (error) {
      await report({ unexpected: error });
    }
  }
  // NestJS -> Rust: a request the Rust handler refuses; the error reported as an event.
  async startRefused(data) {
    try {
      await lastValueFrom(client.send(rust('refuse'), data));
      await report({ unexpected: 'an answer' });
    } catch (error) {
      await report({ error });
    }
  }
}

const method = (name) => Object.getOwnPropertyDescriptor(Handlers.prototype, name);
const handlers = [
  [MessagePattern, 'sum', 'sum'],
  [MessagePattern, 'reserve', 'reserve'],
  [EventPattern, 'noted', 'noted'],
  [EventPattern, 'start', 'start'],
  [EventPattern, 'start-refused', 'startRefused'],
];
for (const [decorator, name, function_] of handlers) {
  decorator(nest(name))(Handlers.prototype, function_, method(function_));
}
Controller()(Handlers);

if (transport === 'kafka') {
  const { Kafka } = await import('kafkajs');
  const admin = new Kafka({ clientId: `${prefix}-admin`, brokers: [parsed.host], logLevel: 1 }).admin();
  await admin.connect();
  const topics = [...handlers.map(([, name]) => nest(name)), ...calls.map((call) => `${call}.reply`)];
  await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: 1 })) });
  await admin.disconnect();
  // A Kafka client reads the answers to the patterns it sends to.
  calls.forEach((call) => client.subscribeToResponseOf(call));
}

class AppModule {}
Module({ controllers: [Handlers] })(AppModule);

const app = await NestFactory.createMicroservice(AppModule, {
  ...options,
  logger: ['error', 'warn'],
});
await app.listen();
await client.connect();
if (transport === 'kafka') {
  // A send before the reply topics are assigned to the client fails at once.
  const assigned = () => calls.every((call) => `${call}.reply` in client.getConsumerAssignments());
  while (!assigned()) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
console.log('ready');
