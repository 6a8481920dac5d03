# udp_sink.py HOST PORT: a UDP server. Prints "ready" once bound, then
# each datagram it receives as one line, "PORT TEXT" (PORT: its own port,
# so that a test reading several sinks' logs knows which got what). A
# datagram that starts with "echo" is answered, to its source, with
# "answer to " and the datagram. Runs until stopped.
import socket
import sys

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(65536)
    text = data.decode(errors="replace").strip()
    print(sys.argv[2], text, flush=True)
    if data.startswith(b"echo"):
        s.sendto(b"answer to " + data, peer)
