# An asyncio TCP server for the kernel-TLS tests: echoes every line, or with
# --greet sends a greeting first (a server that speaks first). Prints
# "ready" once it listens.
import asyncio, sys

async def serve(reader, writer):
    if GREET:
        writer.write(b"HELLO meshim\n")
        await writer.drain()
    while True:
        line = await reader.readline()
        if not line:
            break
        writer.write(line)
        await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(serve, sys.argv[1], int(sys.argv[2]))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

GREET = "--greet" in sys.argv
asyncio.run(main())
