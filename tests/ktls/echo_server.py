# An asyncio TCP server for the kernel-TLS tests (an event loop: accepts on
# a non-blocking socket, so the shim may hand its connections to kernel TLS).
#   echo_server.py HOST PORT [--greet]
# Echoes bytes as they come. With --greet it speaks first ("HELLO meshim").
# A connection whose first line is "HALFCLOSE" gets "bye", then the
# server's FIN, and what it sends after that is printed ("after-fin: ...").
# Prints "ready" once it listens.
import asyncio, sys

async def serve(reader, writer):
    if GREET:
        writer.write(b"HELLO meshim\n")
        await writer.drain()
    first = await reader.read(65536)
    if first.startswith(b"HALFCLOSE\n"):
        writer.write(b"bye\n")
        await writer.drain()
        writer.write_eof()
        rest = await reader.read()
        print("after-fin:", rest.decode().strip(), flush=True)
        writer.close()
        return
    data = first
    while data:
        writer.write(data)
        await writer.drain()
        data = await reader.read(65536)
    writer.close()

async def main():
    server = await asyncio.start_server(serve, sys.argv[1], int(sys.argv[2]))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

GREET = "--greet" in sys.argv
asyncio.run(main())
