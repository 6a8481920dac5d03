# Before its first mTLS connection a process asks whether the kernel takes
# TLS keys (mesh/ktls.c: setsockopt TCP_ULP "tls" on the two ends of a
# loopback pair). Where the kernel has no tls upper layer registered
# (/proc/sys/net/ipv4/tcp_available_ulp, as on this machine's kernel) and
# the process could not have its module loaded (no CAP_NET_ADMIN), the
# answer is known without that pair: no loopback connection is made. Where
# the pair is made (root here), it is closed without leaving a socket in
# TIME_WAIT: a host running short-lived mTLS clients kept one per process
# for a minute.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

# A folder another user can read: the identity of the client run as nobody.
chmod 0711 "$TMP"
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
chmod 0755 "$C" && chmod 0644 "$C"/*
port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
tls_ini "$TMP/client.ini" web "[service:orders]" "endpoints = 127.0.0.2:$port" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders"
sed -i 's/^log_level = info/log_level = debug/' "$TMP/client.ini"
chmod 0644 "$TMP/client.ini"
cat > "$TMP/client.py" <<'PY'
import sys, urllib.request
print(urllib.request.urlopen("http://orders:%s/" % sys.argv[1], timeout=20).status)
PY
chmod 0644 "$TMP/client.py"

# --- a process that cannot load the module: no probe connection -------------
if grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp; then
    echo "this kernel has the tls ULP registered: the no-probe case is for one without ($(cat /proc/sys/net/ipv4/tcp_available_ulp))"
else
    MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
        python3 -m http.server --bind 127.0.0.2 --directory "$TMP" "$port" > "$TMP/server.log" 2>&1 &
    PIDS+=($!)
    wait_port 127.0.0.2 "$port"
    mkdir -m 0700 "$TMP/nobody-stats" && chown 65534 "$TMP/nobody-stats"
    out=$(strace -f -qq -e trace=connect -o "$TMP/connects" \
          setpriv --reuid=65534 --regid=65534 --clear-groups \
          env MESHIM_CONFIG="$TMP/client.ini" MESHIM_STATS_DIR="$TMP/nobody-stats" LD_PRELOAD="$MESHIM_PRELOAD" \
          python3 "$TMP/client.py" "$port" 2> "$TMP/nobody.err") ||
        fail "the client as nobody: $(tail -3 "$TMP/nobody.err")"
    [ "$out" = 200 ] || fail "the client as nobody got $out"
    grep -q "kernel TLS: not offered, the kernel has no tls ULP" "$TMP/nobody.err" ||
        fail "no debug line saying why kernel TLS is not offered: $(grep -i kernel "$TMP/nobody.err")"
    grep -q 'inet_addr("127.0.0.2")' "$TMP/connects" || fail "strace saw no connect to the server: $(cat "$TMP/connects")"
    grep -q 'inet_addr("127.0.0.1")' "$TMP/connects" &&
        fail "a probe connection was made: $(grep 127.0.0.1 "$TMP/connects")"
    ok "without CAP_NET_ADMIN, on a kernel without the tls ULP: no probe connection, the request made over mTLS"
fi

# --- root, in a network namespace of its own: the probe leaves no TIME_WAIT --
unshare -n true 2> /dev/null || fail "cannot make a network namespace"
out=$(env PRELOAD="$MESHIM_PRELOAD" SINI="$TMP/server.ini" CINI="$TMP/client.ini" DIR="$TMP" PORT="$port" \
      unshare -n bash -c '
    ip link set lo up || exit 1
    MESHIM_CONFIG=$SINI LD_PRELOAD=$PRELOAD python3 -m http.server --bind 127.0.0.2 --directory "$DIR" "$PORT" \
        > /dev/null 2>&1 & server=$!
    for _ in $(seq 1 300); do
        ss -Hltn "sport = :$PORT" | grep -q . && break
        sleep 0.1
    done
    for i in 1 2 3; do
        MESHIM_CONFIG=$CINI LD_PRELOAD=$PRELOAD python3 "$DIR/client.py" "$PORT" 2>> "$DIR/root.err" || echo failed
    done
    echo "time-wait $(ss -Htan state time-wait src 127.0.0.1 dst 127.0.0.1 | wc -l)"
    kill $server; wait $server 2> /dev/null')
[ "$(grep -c '^200$' <<< "$out")" = 3 ] || fail "the clients in the namespace: $out $(tail -3 "$TMP/root.err")"
[ "$(grep -c "kernel TLS: not offered, the kernel does not take the keys" "$TMP/root.err")" = 3 ] ||
    fail "the probe was not made by the three root clients: $(grep -i 'kernel TLS' "$TMP/root.err")"
grep -qx "time-wait 0" <<< "$out" || fail "the probe left sockets in TIME_WAIT: $out"
ok "as root the probe is made, and its loopback pair leaves nothing in TIME_WAIT (3 clients)"
