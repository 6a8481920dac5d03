# A reset crosses the mesh as a reset, not as an end, both ways, as it does
# over plain TCP (the relay and the HTTP proxy stand between the
# application's socketpair end and the real socket, and a socketpair has no
# reset of its own: conn_pair_reset, relay.c's abort_net):
# - mTLS, both ends shimmed: a server that closes with SO_LINGER 0 after
#   100000 bytes: the client reads the 100000 bytes, then ECONNRESET (an end
#   would make a cut stream look whole); closed plainly: the bytes, then EOF;
# - mTLS: a client that closes with the server's bytes unread: the server
#   reads ECONNRESET, as from TCP;
# - protocol = http: an answer whose body ends with the connection, cut by
#   a reset: python3's http.client raises ConnectionResetError, not a short
#   body read as whole; ended by FIN: the whole body.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u "$ROOT/tests/helpers/reset_server.py" 127.0.0.2 "$port" > "$TMP/server.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$port"
tls_ini "$TMP/client.ini" web \
    "[service:orders]" "endpoints = 127.0.0.2:$port" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders"

# thrice WHAT WANT CMD...: CMD prints WANT, 3 runs of 3.
thrice() {
    local what=$1 want=$2 got i
    shift 2
    for i in 1 2 3; do
        got=$("$@" 2> "$TMP/client.err") || fail "$what: client: $(cat "$TMP/client.err")"
        [ "$got" = "$want" ] || fail "$what read as '$got', want '$want'"
    done
}

# mode: the bytes the client read, and how its stream ended after them (it
# says it has all 100000 first, so that no byte is still on its way when
# the server resets: a reset drops those, directly as well).
read_all() {
    MESHIM_CONFIG=$TMP/client.ini shimmed timeout 20 python3 - "$port" "$1" <<'PY'
import socket, sys
c = socket.create_connection(("orders", int(sys.argv[1])))
c.sendall(sys.argv[2].encode())
n = 0
try:
    while n < 100000:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
    c.sendall(b"k")
    d = c.recv(65536)
    print(n, "EOF" if not d else "more bytes")
except OSError as e:
    print(n, e.__class__.__name__)
PY
}

thrice "a reset after 100000 bytes over mTLS" "100000 ConnectionResetError" read_all A
ok "mTLS: the server's reset reaches the client as ECONNRESET, after every byte (3 of 3)"
got=$(read_all F 2> "$TMP/client.err") || fail "client (FIN): $(cat "$TMP/client.err")"
[ "$got" = "100000 EOF" ] || fail "a plain close after 100000 bytes over mTLS read as '$got'"
ok "mTLS: a plain close still reads as the end"

MESHIM_CONFIG=$TMP/client.ini shimmed timeout 20 python3 - "$port" <<'PY' 2> "$TMP/client.err" ||
import select, socket, sys
c = socket.create_connection(("orders", int(sys.argv[1])))
c.sendall(b"U")
select.select([c], [], [], 10)  # the server's bytes are here, and left unread
c.close()
PY
    fail "client (unread): $(cat "$TMP/client.err")"
wait_until 'grep -q "^unread:" "$TMP/server.log"' || fail "the server never saw the client's close"
grep -q "^unread: ConnectionResetError" "$TMP/server.log" ||
    fail "a client's close with bytes unread reached the server as '$(grep '^unread:' "$TMP/server.log")'"
ok "mTLS: a client's close with bytes unread reaches the server as ECONNRESET"

# protocol = http, in the clear.
hport=$(free_port)
python3 -u "$ROOT/tests/helpers/reset_server.py" 127.0.0.3 "$hport" > "$TMP/http-server.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.3 "$hport"
printf '[service:cut]\nendpoints = 127.0.0.3:%s\nprotocol = http\n' "$hport" > "$TMP/http.ini"
body() {
    MESHIM_CONFIG=$TMP/http.ini shimmed timeout 20 python3 - "$hport" "$1" <<'PY'
import http.client, sys
h = http.client.HTTPConnection("cut", int(sys.argv[1]), timeout=10)
h.request(sys.argv[2], "/")
r = h.getresponse()
try:
    print(len(r.read()), "EOF")
except OSError as e:
    print(e.__class__.__name__)
PY
}
thrice "an answer cut by a reset through protocol = http" ConnectionResetError body GET
ok "protocol = http: an answer ended by the connection and cut by a reset raises ConnectionResetError (3 of 3)"
got=$(body OPTIONS 2> "$TMP/http.err") || fail "http client (FIN): $(cat "$TMP/http.err")"
[ "$got" = "50000 EOF" ] || fail "an answer ended by FIN read as '$got' through protocol = http"
ok "protocol = http: the same answer ended by FIN reads whole"
