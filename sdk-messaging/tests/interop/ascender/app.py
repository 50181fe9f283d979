"""An Ascender Framework microservice (the real ascender-framework from PyPI, installed by
scripts/test), the peer of the Rust side in sdk-messaging/tests/it/interop.rs.

    python3 app.py <redis|kafka> <url> <prefix>

Handles `<prefix>.asc.*` and calls the Rust side's `<prefix>.rust.*`; prints `ready` once it
listens. On Kafka it first creates the topics it reads (its handlers' and `_rpc:response`),
as a Kafka deployment's operators would.
"""
import asyncio
import sys
from typing import Annotated, Any
from ascender.core import Controller, Inject
from ascender.core.router import provideRouter
from ascender.common.api_docs import DefineAPIDocs
from ascender.core.applications.create_application import createApplication
from ascender.common.microservices import (
    ClientProxy, EventPattern, MessagePattern, RPCException, Transports, provideMicroservices,
)

transport, url, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
rust = lambda name: f"{prefix}.rust.{name}"
handled = ["sum", "reserve", "noted", "start", "start-refused"]
tasks = set()


def spawn(coroutine):
    task = asyncio.get_running_loop().create_task(coroutine)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


@Controller(standalone=True, guards=[], imports=[], providers=[])
class Handlers:
    def __init__(self, client: Annotated[ClientProxy, Inject("main")]):
        self.client = client

    @MessagePattern(f"{prefix}.asc.sum")
    async def sum(self, numbers: list[int]) -> int:
        return sum(numbers)

    @MessagePattern(f"{prefix}.asc.reserve")
    async def reserve(self, item: dict[str, Any]) -> dict:
        raise RPCException(f"{item['name']} is taken", code=409)

    @EventPattern(f"{prefix}.asc.noted")
    async def noted(self, data: dict[str, Any]):
        await self.client.emit(rust("seen"), data)

    # Ascender's Redis listener awaits each handler before it reads the next message, so a
    # handler that sends and waits would wait for an answer its own listener cannot read
    # (it times out): the calls to the Rust side run as tasks of their own.
    @EventPattern(f"{prefix}.asc.start")
    async def start(self, data: dict[str, Any]):
        spawn(self.call_double(data))

    @EventPattern(f"{prefix}.asc.start-refused")
    async def start_refused(self, data: dict[str, Any]):
        spawn(self.call_refuse(data))

    async def call_double(self, data: dict[str, Any]):
        try:
            doubled = await self.client.send(rust("double"), data["x"], timeout=10)
            await self.client.emit(rust("result"), {"doubled": doubled})
        except Exception as error:
            await self.client.emit(rust("result"), {"unexpected": repr(error)})

    # An Ascender caller never reads a failure (Ascender writes them to the request's
    # pattern, as the Rust side does): the call times out, after 3 s here.
    async def call_refuse(self, data: dict[str, Any]):
        try:
            await self.client.send(rust("refuse"), data, timeout=3)
            await self.client.emit(rust("result"), {"unexpected": "an answer"})
        except RPCException as error:
            await self.client.emit(rust("result"), {"error": error.to_dict()})
        except Exception as error:
            await self.client.emit(rust("result"), {"unexpected": repr(error)})

if transport == "kafka":
    options = {"transport": Transports.KAFKA, "options": {"bootstrap_servers": url.split("://")[-1]}}
else:
    options = {"transport": Transports.REDIS, "options": {"redis_url": url}}

app = createApplication(config={
    "providers": [
        {"provide": DefineAPIDocs, "value": DefineAPIDocs(swagger_url=None, redoc_url=None)},
        provideRouter([{"path": "/", "controller": Handlers}]),
        provideMicroservices([{"token": "main", "options": options, "with_client_proxy": True}]),
    ]
})


async def create_topics():
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    admin = AIOKafkaAdminClient(bootstrap_servers=options["options"]["bootstrap_servers"])
    await admin.start()
    try:
        for topic in [f"{prefix}.asc.{name}" for name in handled] + ["_rpc:response"]:
            try:
                await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
            except Exception as error:  # one that exists already
                print(f"topic {topic}: {error!r}", file=sys.stderr)
    finally:
        await admin.close()

if __name__ == "__main__":
    import uvicorn
    async def main():
        if transport == "kafka":
            await create_topics()
        # Built inside the event loop: aiokafka's clients need a running one.
        config = uvicorn.Config(app(), host="127.0.0.1", port=0, log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        print("ready", flush=True)
        await task
    asyncio.run(main())
