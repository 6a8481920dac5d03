# The meshed application on the strict mTLS port: an asyncio line echo
# server that logs each connection it is given and how it ended.
import asyncio, sys

def say(line):
    # One write a line: under python3 -u, print() writes its pieces apart,
    # and the driver reading between them saw "gone" without the rest.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()

async def serve(r, w):
    say("conn")
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
    say("gone %s %d" % (how, got))
    w.close()

async def main():
    srv = await asyncio.start_server(serve, "127.0.0.2", int(sys.argv[1]), backlog=2048)
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
