#!/usr/bin/env bash
# gRPC by service name: Debian's python3-grpcio, gRPC's C core (the one
# gRPC for Ruby, PHP and C++ use too), client and servers unmodified.
# gRPC's core resolves names with a DNS client of its own (c-ares) unless
# GRPC_DNS_RESOLVER says otherwise, so a service name never reached the
# shim ("DNS resolution failed for orders:PORT: C-ares status is not
# ARES_SUCCESS"); the shim sets GRPC_DNS_RESOLVER=native, and:
# - calls to orders:PORT, a channel (so a connection) each, reach all three
#   endpoints (round_robin: p2c would favour the quickest of three python
#   servers);
# - with one endpoint refusing, every call is answered;
# - over mTLS: a client whose service says tls = mtls reaches a gRPC
#   server behind a strict port, as the identity it holds; a plaintext gRPC
#   client is refused there, with a line that says why;
# - to a service with protocol = http, gRPC's HTTP/2 is carried as TCP,
#   said once a connection, and the access log names each one's endpoint;
#   at a server's protocol = http port, the line says HTTP/2 too; the
#   service's fault_abort resets such a connection (no request to answer
#   503);
# - a resolver the user chose is kept.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

# Debian's package is built for Debian's python3 (a python3 earlier in PATH,
# pyenv's for example, may not have it).
PY=/usr/bin/python3
$PY -c 'import grpc' 2>/dev/null || fail "python3-grpcio is not installed (make deps)"
ECHO=$ROOT/tests/helpers/grpc_echo.py

# calls OUT TARGET N [VAR=VALUE...]: N calls under the shim, a line each.
calls() {
    local out=$1 target=$2 n=$3
    shift 3
    env "$@" LD_PRELOAD="$MESHIM_PRELOAD" $PY "$ECHO" call "$target" "$n" > "$out" 2> "$out.err" \
        || fail "the gRPC client failed: $(tail -3 "$out.err")"
}

port=$(free_port)
for i in 2 3 4; do
    $PY "$ECHO" serve "127.0.0.$i:$port" "backend-$i" > "$TMP/grpc$i.log" 2>&1 &
    PIDS+=($!)
done
for i in 2 3 4; do wait_port "127.0.0.$i" "$port"; done

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
mport=$(free_port)
tls_ini "$TMP/client.ini" web \
    "[service:orders]" "endpoints = 127.0.0.2, 127.0.0.3, 127.0.0.4" "lb = round_robin" \
    "[service:vault]" "endpoints = 127.0.0.2:$mport" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders" \
    "[service:h2c]" "protocol = http" "endpoints = 127.0.0.2, 127.0.0.3" "lb = round_robin" \
    "[service:h2cfault]" "protocol = http" "endpoints = 127.0.0.2" "fault_abort = 100%"
ini_access_log "$TMP/client.ini" "$TMP/client-access.log"
export MESHIM_CONFIG=$TMP/client.ini

# The variable, as the program sees it: set by the shim, or the user's.
got=$(shimmed $PY -c 'import os; print(os.environ.get("GRPC_DNS_RESOLVER"))')
[ "$got" = native ] || fail "GRPC_DNS_RESOLVER under the shim: $got (want native)"
got=$(GRPC_DNS_RESOLVER=ares shimmed $PY -c 'import os; print(os.environ.get("GRPC_DNS_RESOLVER"))')
[ "$got" = ares ] || fail "the user's GRPC_DNS_RESOLVER=ares became $got"
ok "GRPC_DNS_RESOLVER=native under the shim; a user's own choice (ares) is kept"

calls "$TMP/out" "orders:$port" 30
grep -q '^error' "$TMP/out" && fail "calls to orders:$port failed: $(grep -m3 '^error' "$TMP/out")"
[ "$(grep -c '^backend-' "$TMP/out")" -eq 30 ] || fail "not 30 answers: $(head -5 "$TMP/out")"
assert_spread "$TMP/out" 5 "30 gRPC calls to orders:$port, a channel each"

kill "${PIDS[2]}"
wait "${PIDS[2]}" 2>/dev/null
calls "$TMP/out" "orders:$port" 20
grep -q '^error' "$TMP/out" && fail "with 127.0.0.4 refusing: $(grep -m3 '^error' "$TMP/out")"
[ "$(grep -c '^backend-' "$TMP/out")" -eq 20 ] || fail "with 127.0.0.4 refusing: $(cat "$TMP/out")"
ok "127.0.0.4 refusing: 20 of 20 answered ($(sort "$TMP/out" | uniq -c | tr -s ' ' | tr '\n' ' '))"

# A service with protocol = http: gRPC's HTTP/2 is carried as TCP, with a
# line that says so, and each connection's access-log line names its
# endpoint (there is no request line).
calls "$TMP/out" "h2c:$port" 4
[ "$(grep -c '^backend-[23]$' "$TMP/out")" -eq 4 ] || fail "calls to h2c: $(cat "$TMP/out" "$TMP/out.err")"
grep -q 'h2c: not HTTP/1.x (HTTP/2 without TLS, as gRPC speaks it): this connection is carried as TCP' \
    "$TMP/out.err" || fail "no line says h2c's HTTP/2 is carried as TCP: $(cat "$TMP/out.err")"
for i in 2 3; do
    grep -q "\"service\":\"h2c\",\"endpoint\":\"127.0.0.$i:$port\",\"attempts\":1,\"result\":\"ok\"" \
        "$TMP/client-access.log" || fail "no access-log line names h2c's 127.0.0.$i: $(grep h2c "$TMP/client-access.log")"
done
ok "4 gRPC calls to a protocol = http service, carried as TCP, each line naming its endpoint"

# Carried as TCP, a connection has no request to fail: fault_abort resets
# the connection itself, as a TCP service's connect would be refused.
calls "$TMP/out" "h2cfault:$port" 2
[ "$(grep -c '^error: UNAVAILABLE' "$TMP/out")" -eq 2 ] ||
    fail "calls to h2cfault (fault_abort = 100%): $(cat "$TMP/out")"
grep -q '"service":"h2cfault",.*"result":"fault","flags":"FI"' "$TMP/client-access.log" ||
    fail "no access-log line says h2cfault's connection was faulted: $(grep h2cfault "$TMP/client-access.log")"
ok "fault_abort = 100% on a protocol = http service carried as TCP: 2 calls UNAVAILABLE, the line says fault (FI)"

# The same at a server's inbound port with protocol = http.
hport=$(free_port)
printf '[inbound:%s]\ntls = off\nprotocol = http\n' "$hport" > "$TMP/h2c-server.ini"
MESHIM_CONFIG=$TMP/h2c-server.ini shimmed $PY "$ECHO" serve "127.0.0.3:$hport" h2c-server \
    > "$TMP/h2c-server.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.3 "$hport"
$PY "$ECHO" call "127.0.0.3:$hport" 3 > "$TMP/out" 2> "$TMP/out.err"
[ "$(grep -c '^h2c-server$' "$TMP/out")" -eq 3 ] || fail "calls to an inbound http port: $(cat "$TMP/out" "$TMP/out.err")"
wait_until "grep -q 'inbound:$hport: not HTTP/1.x (HTTP/2 without TLS, as gRPC speaks it)' '$TMP/h2c-server.log'" \
    || fail "the server's line does not say HTTP/2: $(cat "$TMP/h2c-server.log")"
ok "3 gRPC calls to a server's protocol = http port: $(grep -m1 'inbound:' "$TMP/h2c-server.log")"

# mTLS: a gRPC server behind a strict port, only web allowed.
tls_ini "$TMP/server.ini" orders "[inbound:$mport]" "tls = strict" \
    "allow = spiffe://test.mesh/ns/prod/sa/web"
ini_access_log "$TMP/server.ini" "$TMP/server-access.log"
MESHIM_CONFIG=$TMP/server.ini shimmed $PY "$ECHO" serve "127.0.0.2:$mport" vault \
    > "$TMP/vault.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$mport"
calls "$TMP/out" "vault:$mport" 5
[ "$(grep -c '^vault$' "$TMP/out")" -eq 5 ] || fail "calls over mTLS: $(cat "$TMP/out" "$TMP/out.err")"
wait_until "[ \$(grep -c 'spiffe://test.mesh/ns/prod/sa/web' '$TMP/server-access.log' 2>/dev/null) -ge 5 ]" \
    || fail "the server's access log does not show 5 mTLS connections from web: $(cat "$TMP/server-access.log" 2>&1)"
ok "5 gRPC calls over mTLS to a strict port, each from spiffe://test.mesh/ns/prod/sa/web"

# A plaintext gRPC client (no shim) at the strict port: refused, said so.
$PY "$ECHO" call "127.0.0.2:$mport" 1 > "$TMP/out" 2> "$TMP/out.err"
grep -q '^error: UNAVAILABLE' "$TMP/out" || fail "a plaintext client was not refused: $(cat "$TMP/out")"
wait_until "grep -q 'refused: TLS handshake.*does not speak TLS' '$TMP/vault.log'" \
    || fail "no line says the plaintext client was refused: $(cat "$TMP/vault.log")"
ok "a plaintext gRPC client is refused: $(grep -m1 'refused' "$TMP/vault.log")"
