// A NestJS microservice (the real @nestjs/microservices, installed by scripts/test), the
// peer of the Rust side in sdk-messaging/tests/it/nestjs.rs. Plain JavaScript: NestJS's
// decorators are applied as the functions they are.
//
//   node app.mjs <redis|nats|rabbitmq> <url> <prefix>
//
// Handles `<prefix>.nest.*` and calls the Rust side's `<prefix>.rust.*`; prints `ready`
// once it listens. On RabbitMQ it consumes the queue `<prefix>-nest` and sends to the Rust
// side's, `<prefix>-rust`.
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
const options = {
  redis: { transport: Transport.REDIS, options: { host: parsed.hostname, port: Number(parsed.port) } },
  nats: { transport: Transport.NATS, options: { servers: [url] } },
  rabbitmq: rabbit(`${prefix}-nest`),
}[transport];
const client = ClientProxyFactory.create(transport === 'rabbitmq' ? rabbit(`${prefix}-rust`) : options);
const rust = (name) => `${prefix}.rust.${name}`;
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
      const doubled = await lastValueFrom(client.send(rust('double'), data.x));
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
MessagePattern(`${prefix}.nest.sum`)(Handlers.prototype, 'sum', method('sum'));
MessagePattern(`${prefix}.nest.reserve`)(Handlers.prototype, 'reserve', method('reserve'));
EventPattern(`${prefix}.nest.noted`)(Handlers.prototype, 'noted', method('noted'));
EventPattern(`${prefix}.nest.start`)(Handlers.prototype, 'start', method('start'));
EventPattern(`${prefix}.nest.start-refused`)(Handlers.prototype, 'startRefused', method('startRefused'));
Controller()(Handlers);

class AppModule {}
Module({ controllers: [Handlers] })(AppModule);

const app = await NestFactory.createMicroservice(AppModule, {
  ...options,
  logger: ['error', 'warn'],
});
await app.listen();
await client.connect();
console.log('ready');
