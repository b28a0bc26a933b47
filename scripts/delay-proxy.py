#!/usr/bin/env python3
"""A TCP proxy that delays every byte by a fixed time in each direction (order kept).

Used by scripts/netns-test.sh to add round-trip latency where the kernel has no netem qdisc:
    delay-proxy.py LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_SECONDS
"""
import asyncio
import sys
import time


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass

    task = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((time.monotonic() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((0, None))
    try:
        await task
    except ConnectionError:
        pass


async def main():
    listen, target, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    lhost, lport = listen.rsplit(":", 1)
    thost, tport = target.rsplit(":", 1)

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(thost, int(tport))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, server_writer, delay), pump(server_reader, client_writer, delay))
        client_writer.close()
        server_writer.close()

    server = await asyncio.start_server(handle, lhost, int(lport))
    print(f"delay-proxy: {listen} -> {target}, {delay * 1000:.0f} ms each way", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
