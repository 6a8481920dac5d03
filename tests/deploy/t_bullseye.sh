# The shim built here (Debian 12, glibc 2.36) in an older userland: Debian
# 11's (glibc 2.31), a root made by tests/deploy/mkroot, entered with chroot
# in a mount namespace of its own (its /proc is gone with it). Its own curl
# and python3, unmodified, reach a service by name with a dead endpoint
# retried, and over mTLS to a meshed server here, whose access log names
# the client's identity; its meshim command checks the config.
. "$(dirname "$0")/lib.sh"

# What the image would carry: the library, the command, a config, keys.
O=/opt/meshim-test.$$
mkdir -p "$R$O"
trap 'rm -rf "$R$O"; cleanup' EXIT
cp "$BUILD/libmeshim.so" "$BUILD/meshim" "$R$O/"
C=$R$O/pki
make_certs "$C" > /dev/null || fail "cannot make the test certificates"

start_backends

# A name server for DNS and SRV discovery (dnsmasq on this host's
# loopback, which the root shares): web.test and the SRV record's target
# are the live backend.
dns_port=$(free_port)
printf '127.0.0.3 web.test\n127.0.0.3 n3.test\n' > "$TMP/hosts"
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --no-negcache \
    --addn-hosts="$TMP/hosts" --port="$dns_port" --listen-address=127.0.0.1 --bind-interfaces \
    --user=root --group=root --pid-file="$TMP/dnsmasq.pid" --log-facility=- \
    --srv-host="_http._tcp.web.test,n3.test,$port,10,10" 2>> "$TMP/dnsmasq.log" &
PIDS+=($!)
wait_port 127.0.0.1 "$dns_port"

# The client's config, as the image has it (paths inside the root).
cat > "$R$O/meshim.ini" <<INI
[meshim]
log_level = info
access_log = $O/access.log
dns_server = 127.0.0.1:$dns_port
[tls]
cert = $O/pki/web.pem
key = $O/pki/web.key
ca = $O/pki/ca.pem
[service:web]
; nothing listens on .4, and it is nearly always the first pick
endpoints = 127.0.0.4:$port weight=1000, 127.0.0.3:$port
lb = random
[service:webdns]
dns = web.test
[service:websrv]
srv = _http._tcp.web.test
[service:secure]
endpoints = 127.0.0.2:$tport
tls = mtls
identity = spiffe://test.mesh/ns/prod/sa/orders
INI
inside() {   # inside CMD...: in the bullseye root, the shim preloaded
    in_root LD_PRELOAD="$O/libmeshim.so" MESHIM_CONFIG="$O/meshim.ini" "$@"
}
glibc=$(inside ldd --version 2> /dev/null | head -n 1)
echo "  the root's $glibc"
case $glibc in *2.3[0-3]|*2.2[0-9]|*2.1[7-9]) ;; *) fail "the root's glibc is not older than 2.34: $glibc" ;; esac

out=$(inside curl -sS --max-time 20 "http://web:$port/" 2> "$TMP/err") || fail "curl: $(cat "$TMP/err")"
[ "$out" = "hello from the backend" ] || fail "curl got: $out"
ok "bullseye curl: web by name"

out=$(inside python3 -c "import urllib.request; print(urllib.request.urlopen('http://web:$port/', timeout=20).read().decode().strip())" 2> "$TMP/err") ||
    fail "python3: $(cat "$TMP/err")"
[ "$out" = "hello from the backend" ] || fail "python3 got: $out"
ok "bullseye python3 (3.9): web by name"
grep -q '"service":"web".*"attempts":2.*"result":"ok"' "$R$O/access.log" ||
    fail "no retried connection in the access log: $(cat "$R$O/access.log")"
ok "bullseye: the dead endpoint was retried on the live one (access log)"

# The watcher's resolver calls: in glibc 2.31 res_nquery, res_nmkquery and
# dn_expand are libresolv's (libc's from 2.34 on, where the build links).
for svc in webdns websrv; do
    out=$(inside curl -sS --max-time 20 "http://$svc:$port/" 2> "$TMP/err") || fail "curl $svc: $(cat "$TMP/err")"
    [ "$out" = "hello from the backend" ] || fail "curl $svc got: $out"
done
ok "bullseye curl: a service found by DNS (A records) and one by SRV, from dnsmasq"
# python3 does not load libresolv itself: the shim opens it for the query.
out=$(inside python3 -c "
import urllib.request
def mapped(): return 'libresolv' in open('/proc/self/maps').read()
before = mapped()
body = urllib.request.urlopen('http://websrv:$port/', timeout=20).read().decode().strip()
print(before, mapped(), body)" 2> "$TMP/err") || fail "python3 websrv: $(cat "$TMP/err")"
[ "$out" = "False True hello from the backend" ] || fail "python3 websrv (libresolv mapped before, after; body): $out"
ok "bullseye python3: libresolv opened by the shim for its first DNS query, not at start"

out=$(inside curl -sS --max-time 20 "http://secure:$tport/" 2> "$TMP/err") || fail "curl over mTLS: $(cat "$TMP/err")"
[ "$out" = "hello from the backend" ] || fail "curl over mTLS got: $out"
for i in $(seq 1 50); do grep -q 'sa/web' "$TMP/server-access.log" 2>/dev/null && break; sleep 0.1; done
grep -q '"peer_identity":"spiffe://test.mesh/ns/prod/sa/web"' "$TMP/server-access.log" ||
    fail "the server did not see the client's identity: $(cat "$TMP/server-access.log" 2>/dev/null)"
ok "bullseye curl over mTLS: the server's access log names spiffe://test.mesh/ns/prod/sa/web"

out=$(inside "$O/meshim" check -c "$O/meshim.ini" 2>&1) || fail "meshim check: $out"
echo "$out" | grep -q 'secure' || fail "meshim check: $out"
ok "bullseye: meshim check runs and lists the services"
