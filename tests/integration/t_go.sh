# Go connects with its own system calls, so a VIP would lead it nowhere
# (before: "dial tcp 127.x.y.z:PORT: connect: connection refused"). A Go
# program built by Debian's golang-go (cgo, external link) resolving through
# glibc gets the endpoints' own addresses instead:
# - by service name, through `meshim PROGRAM` (which sets GODEBUG=netdns=cgo)
#   and through LD_PRELOAD with GODEBUG: every request answered, and each
#   lookup leads with the next endpoint, so all three serve;
# - one endpoint refusing: Go's dialer goes on to the next address, nothing
#   lost; one failing active health checks is listed last in every answer;
# - a service that requires mTLS does not resolve (the program would speak
#   plaintext to it), with a line that says why, and nothing reaches it;
# - meshim doctor says what the program gets;
# - a C program beside it still gets the VIP.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

command -v go >/dev/null || fail "go is not installed (golang-go; make deps)"
export GOCACHE=${GOCACHE:-${HOME:-$TMP}/.cache/go-build} GO111MODULE=off GOPATH=$TMP/gopath
go build -ldflags=-linkmode=external -o "$TMP/dialer" tests/helpers/go/dialer.go \
    > "$TMP/go-build.log" 2>&1 || fail "go build: $(cat "$TMP/go-build.log")"
ok "a cgo Go program built with external linking"

port=$(free_port)
start_backends "$port"
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
tls_ini "$TMP/mesh.ini" web \
    "[service:orders]" "hosts = orders" "endpoints = 127.0.0.2, 127.0.0.3, 127.0.0.4" \
    "[service:vault]" "hosts = vault" "endpoints = 127.0.0.2" "tls = mtls"
export MESHIM_CONFIG=$TMP/mesh.ini

# By name through `meshim PROGRAM`: GODEBUG is set for it.
meshim "$TMP/dialer" get orders "$port" 30 > "$TMP/out" 2> "$TMP/err" || fail "dialer: $(cat "$TMP/err")"
grep -q '^error' "$TMP/out" && fail "requests failed: $(grep -m3 '^error' "$TMP/out")"
[ "$(grep -c '^backend-' "$TMP/out")" -eq 30 ] || fail "not 30 answers: $(head -5 "$TMP/out")"
assert_spread "$TMP/out" 5 "meshim dialer: 30 requests to orders by name"

# Through LD_PRELOAD, the user setting GODEBUG.
GODEBUG=netdns=cgo shimmed "$TMP/dialer" get orders "$port" 6 > "$TMP/out" 2> "$TMP/err"
[ "$(grep -c '^backend-' "$TMP/out")" -eq 6 ] || fail "LD_PRELOAD + GODEBUG: $(cat "$TMP/out" "$TMP/err")"
ok "LD_PRELOAD with GODEBUG=netdns=cgo: 6 of 6 answered"

# One endpoint refusing: Go's dialer moves on to the next address.
kill "${PIDS[2]}"
wait "${PIDS[2]}" 2>/dev/null
meshim "$TMP/dialer" get orders "$port" 20 > "$TMP/out" 2> "$TMP/err"
grep -q '^error' "$TMP/out" && fail "with 127.0.0.4 refusing: $(grep -m3 '^error' "$TMP/out")"
[ "$(grep -c '^backend-' "$TMP/out")" -eq 20 ] || fail "with 127.0.0.4 refusing: $(cat "$TMP/out")"
ok "127.0.0.4 refusing: 20 of 20 answered ($(sort "$TMP/out" | uniq -c | tr -s ' ' | tr '\n' ' '))"

# Health checks in the program's own shim mark 127.0.0.4 down: from then
# on it is the last address of every answer (rotation alone would put it
# last in one answer of three).
cat >> "$TMP/mesh.ini" <<INI

[service:checked]
hosts = checked
endpoints = 127.0.0.2:$port, 127.0.0.3:$port, 127.0.0.4:$port
health_check = tcp
health_interval = 200ms
health_timeout = 1s
unhealthy_threshold = 1
INI
meshim "$TMP/dialer" lookups checked 12 > "$TMP/out" 2> "$TMP/err" || fail "lookups: $(cat "$TMP/out" "$TMP/err")"
[ "$(wc -l < "$TMP/out")" -eq 12 ] || fail "lookups: $(cat "$TMP/out")"
awk '$NF != "127.0.0.4" || NF != 3 { bad = 1 } END { exit bad }' "$TMP/out" \
    || fail "127.0.0.4 is not last in every answer once down: $(tr '\n' '|' < "$TMP/out")"
[ "$(cut -d' ' -f1 "$TMP/out" | sort -u | wc -l)" -eq 2 ] \
    || fail "the healthy two do not take turns leading: $(tr '\n' '|' < "$TMP/out")"
ok "an endpoint failing health checks is listed last: $(sed -n 1,2p "$TMP/out" | tr '\n' '|')"

# A service that requires mTLS: no answer, a line that says why, and not
# one byte to its endpoint.
: > "$TMP/backend2.log"
meshim "$TMP/dialer" get vault "$port" 1 > "$TMP/out" 2> "$TMP/err"
grep -q '^error: .*lookup vault' "$TMP/out" || fail "vault resolved: $(cat "$TMP/out")"
grep -q "vault: not resolved: this Go program connects without libc.*mTLS" "$TMP/err" \
    || fail "no line says why vault did not resolve: $(cat "$TMP/err")"
[ ! -s "$TMP/backend2.log" ] || fail "a request reached vault's endpoint: $(cat "$TMP/backend2.log")"
ok "a service that requires mTLS does not resolve: $(grep -m1 "vault: not resolved" "$TMP/err")"

# doctor says what the program gets.
out=$(meshim doctor "$TMP/dialer"); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "names resolve to endpoint addresses; no retries, balancing or mTLS for this program" \
    || fail "doctor: rc=$rc $out"
ok "doctor: $(echo "$out" | grep verdict)"

# A C program in the same config still gets the VIP.
vip=$(MESHIM_LOG_LEVEL=warn shimmed python3 -c 'import socket; print(socket.getaddrinfo("orders", 80, socket.AF_INET)[0][4][0])')
case "$vip" in 127.0.0.[234]) fail "python3 got an endpoint address: $vip" ;; esac
ok "python3 still gets the VIP ($vip)"
