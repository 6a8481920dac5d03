# A connection the program closed while its relay still waits for the peer
# (a TLS server that never closes after our close_notify) still gets its
# access-log line when the program exits right after: at exit every relay
# ends (mesh/relay.c relay_exit) and writes it.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)
python3 - "$port" "$C" > "$TMP/server.log" 2>&1 <<'PY' &
import socket, ssl, sys, time
port, c = int(sys.argv[1]), sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(c + "/orders.pem", c + "/orders.key")
ctx.load_verify_locations(c + "/ca.pem")
ctx.verify_mode = ssl.CERT_REQUIRED
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.2", port))
ls.listen(8)
held = []
while True:
    s, _ = ls.accept()
    try:
        t = ctx.wrap_socket(s, server_side=True)
        t.sendall(t.recv(100))      # one echo, then never a close
        held.append(t)
    except (ssl.SSLError, OSError):
        pass
PY
PIDS+=($!)
wait_port 127.0.0.2 "$port"
tls_ini "$TMP/client.ini" web "[service:echo]" "endpoints = 127.0.0.2:$port" "tls = mtls"
ini_access_log "$TMP/client.ini" "$TMP/access.log"
MESHIM_CONFIG=$TMP/client.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 -c "
import socket
s = socket.create_connection(('echo', $port), timeout=10)
s.sendall(b'ping')
assert s.recv(100) == b'ping'
s.close()
" 2> "$TMP/client.err" || fail "client: $(cat "$TMP/client.err")"
grep -q '"service":"echo".*"result":"ok"' "$TMP/access.log" 2>/dev/null ||
    fail "no access-log line for the closed connection: $(cat "$TMP/access.log" 2>/dev/null)"
ok "a closed mTLS connection whose peer never closes: its line is written at exit"
