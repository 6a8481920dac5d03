# The meshed application on the strict mTLS port: an asyncio line echo
# server that logs each connection it is given and how it ended.
import asyncio, sys

async def serve(r, w):
    print("conn", flush=True)
    how, got = "eof", 0
    try:
        while True:
            line = await r.readline()
            if not line:
                break
            got += len(line)
            w.write(line)
            await w.drain()
    except Exception as e:
        how = type(e).__name__
    print("gone", how, got, flush=True)
    w.close()

async def main():
    srv = await asyncio.start_server(serve, "127.0.0.2", int(sys.argv[1]), backlog=2048)
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
