#!/usr/bin/python3
"""A gRPC service and its client, with Debian's python3-grpcio (no protobuf
code: the method takes and returns bytes).

  grpc_echo.py serve ADDRESS:PORT NAME   answers /echo.Echo/Who with NAME
  grpc_echo.py call TARGET N             N calls, each on a channel of its
                                         own (so a connection of its own)

call prints one line per call: the server's NAME, or "error: CODE details".
"""
import sys
from concurrent import futures

import grpc

METHOD = "/echo.Echo/Who"


def serve(address, name):
    def who(request, context):
        return name.encode() + b" " + request

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "echo.Echo", {"Who": grpc.unary_unary_rpc_method_handler(who)})
    server.add_generic_rpc_handlers((handler,))
    if server.add_insecure_port(address) == 0:
        sys.exit("cannot listen on " + address)
    server.start()
    print("listening", flush=True)
    server.wait_for_termination()


def call(target, n):
    for i in range(n):
        with grpc.insecure_channel(target) as channel:
            who = channel.unary_unary(METHOD)
            try:
                answer = who(b"call-%d" % i, timeout=10)
                print(answer.decode().split(" ")[0], flush=True)
            except grpc.RpcError as e:
                print("error: %s %s" % (e.code().name, e.details()), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    else:
        call(sys.argv[2], int(sys.argv[3]))
