# How each TLS 1.3 handshake a tap recorded went, from the ServerHello in the
# server's bytes (tests/ktls/tap.py's PREFIX.N.down files), one line each:
#   full      no pre_shared_key: a new session (with a key exchange)
#   kex       resumed (pre_shared_key) with a key_share: (EC)DHE done
#   psk-only  resumed without a key_share: no key exchange
#   none      no ServerHello in the file
#   server_hello.py FILE...
import struct, sys

PRE_SHARED_KEY, KEY_SHARE = 41, 51


def server_hello(data):
    """The ServerHello's body from the first handshake record, or None."""
    if len(data) < 9 or data[0] != 22 or data[5] != 2:
        return None
    n = int.from_bytes(data[6:9], "big")
    return data[9:9 + n]


def extensions(body):
    p = 2 + 32                              # legacy_version, random
    p += 1 + body[p]                        # legacy_session_id_echo
    p += 2 + 1                              # cipher_suite, compression
    end = p + 2 + struct.unpack_from(">H", body, p)[0]
    p += 2
    seen = set()
    while p + 4 <= end:
        kind, n = struct.unpack_from(">HH", body, p)
        seen.add(kind)
        p += 4 + n
    return seen


for path in sys.argv[1:]:
    body = server_hello(open(path, "rb").read())
    if body is None:
        print("none")
        continue
    ext = extensions(body)
    print("full" if PRE_SHARED_KEY not in ext else "kex" if KEY_SHARE in ext else "psk-only")
