# Sourced by every tests/deploy test: the integration helpers, the Debian 11
# root made by tests/deploy/mkroot ($R), and how to run in it.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
. "$ROOT/tests/integration/certs.sh"
[ -n "${MESHIM_PRELOAD##*libasan*}" ] || exit 77      # the root has no ASan runtime
R=${BULLSEYE_ROOT:-$ROOT/$BUILD/bullseye}
[ -e "$R/.made" ] || fail "no bullseye root at $R (make $BUILD/bullseye/.made)"
[ "$(id -u)" = 0 ] || fail "needs root (chroot)"

# in_root [VAR=VALUE...] CMD...: CMD in the root, chrooted in a mount
# namespace of its own (its /proc goes with it), with nothing of this
# environment but a PATH and what is given.
in_root() {
    unshare --mount --propagation private sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' \
        "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
}

# start_backends: a plain python3 server on 127.0.0.3:$port and a meshed
# one with orders' identity on a strict mTLS port 127.0.0.2:$tport, its
# access log in $TMP/server-access.log; both serve "hello from the backend".
# Needs the test PKI in $C.
start_backends() {
    port=$(free_port)
    mkdir -p "$TMP/www"
    echo "hello from the backend" > "$TMP/www/index.html"
    python3 -m http.server "$port" --bind 127.0.0.3 --directory "$TMP/www" > /dev/null 2>&1 &
    PIDS+=($!)
    tport=$(free_port)
    tls_ini "$TMP/server.ini" orders "[inbound:$tport]" "tls = strict"
    sed -i "s|^log_level = info|log_level = info\naccess_log = $TMP/server-access.log|" "$TMP/server.ini"
    MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
        python3 -m http.server "$tport" --bind 127.0.0.2 --directory "$TMP/www" > /dev/null 2> "$TMP/server.err" &
    PIDS+=($!)
    wait_port 127.0.0.3 "$port"
    wait_port 127.0.0.2 "$tport"
}

# backend_services: the INI sections that reach start_backends' servers:
# web (plain, 127.0.0.3) and secure (mTLS, orders' identity, 127.0.0.2).
backend_services() {
    cat <<INI
[service:web]
endpoints = 127.0.0.3:$port
[service:secure]
endpoints = 127.0.0.2:$tport
tls = mtls
identity = spiffe://test.mesh/ns/prod/sa/orders
INI
}
