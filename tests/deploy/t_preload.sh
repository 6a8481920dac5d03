# System-wide preload (issue 16, part 5): the library in the Debian 11
# root's /etc/ld.so.preload and a mesh in its /etc/meshim/meshim.ini, as
# images and the OpenTelemetry injector do it. No LD_PRELOAD, no
# MESHIM_CONFIG: every dynamic program of the root loads the shim. They all
# run as without it — bash, apt-get, python3, perl, a set-uid mount run by
# nobody, a static busybox (which loads nothing), python3 as nobody (who
# cannot read the mTLS key: nothing said, nothing loaded) and a program
# that closes every descriptor mid-life — and only the configured services
# are meshed: curl by name, python3 over mTLS, an address not in the
# config untouched (no access-log line).
. "$(dirname "$0")/lib.sh"
[ ! -e "$R/etc/ld.so.preload" ] || fail "$R/etc/ld.so.preload exists already (a run that did not clean up?)"

O=/opt/meshim-preload.$$
mkdir -p "$R$O" "$R/etc/meshim"
trap 'rm -f "$R/etc/ld.so.preload"; rm -rf "$R/etc/meshim" "$R$O"; cleanup' EXIT
cp "$BUILD/libmeshim.so" "$ROOT/tests/helpers/closeall.py" "$R$O/"
C=$R$O/pki
make_certs "$C" > /dev/null || fail "cannot make the test certificates"
chmod 0600 "$C"/*.key
chmod 0755 "$R$O" "$C"

start_backends

cat > "$R/etc/meshim/meshim.ini" <<INI
[meshim]
access_log = $O/access.log
[tls]
cert = $O/pki/web.pem
key = $O/pki/web.key
ca = $O/pki/ca.pem
$(backend_services)
INI
echo "$O/libmeshim.so" > "$R/etc/ld.so.preload"

inside() { in_root "$@"; }   # nothing in the environment: /etc/ld.so.preload does it
# run NAME WANT CMD...: CMD's output is WANT and its stderr is empty.
run() {
    local name=$1 want=$2 out
    shift 2
    out=$(inside "$@" 2> "$TMP/err") || fail "$name: exit $?: $(tail -3 "$TMP/err")"
    [ "$out" = "$want" ] || fail "$name printed \"$out\", want \"$want\""
    [ ! -s "$TMP/err" ] || fail "$name said on stderr: $(tail -3 "$TMP/err")"
}

run "bash" "42 preloaded" bash -c 'echo $((6 * 7)) $(grep -q libmeshim /proc/self/maps && echo preloaded)'
run "perl" "42" perl -e 'print 6 * 7, "\n"'
run "python3" "45" python3 -c 'print(sum(range(10)))'
inside apt-get check > "$TMP/apt.out" 2> "$TMP/err" || fail "apt-get check: $(tail -3 "$TMP/err")"
grep -q "Reading package lists" "$TMP/apt.out" || fail "apt-get check: $(cat "$TMP/apt.out")"
[ ! -s "$TMP/err" ] || fail "apt-get said: $(cat "$TMP/err")"
inside apt-cache policy bash | grep -q "Installed:" || fail "apt-cache policy"
ok "bash, perl, python3, apt-get check and apt-cache run as without it (the shim is in bash's maps)"

run "busybox (static)" "hello from the backend" /bin/busybox wget -q -O - "http://127.0.0.3:$port/"
out=$(inside setpriv --reuid=65534 --regid=65534 --clear-groups mount 2> "$TMP/err") ||
    fail "set-uid mount run by nobody: $(cat "$TMP/err")"
echo "$out" | grep -q "^proc on /proc" || fail "mount printed: $out"
[ ! -s "$TMP/err" ] || fail "set-uid mount said: $(cat "$TMP/err")"
run "python3 as nobody" "ok" setpriv --reuid=65534 --regid=65534 --clear-groups \
    python3 -c 'm = open("/proc/self/maps").read(); print("ok" if "meshim-tls" not in m and "/tls-module-" not in m else "TLS module loaded")'
ok "a static busybox, a set-uid mount run by nobody, python3 as nobody (the key is root's: nothing loaded, nothing said)"

run "curl web by name" "hello from the backend" curl -sS --max-time 20 "http://web:$port/"
grep -q '"service":"web".*"result":"ok"' "$R$O/access.log" || fail "no access-log line for web: $(cat "$R$O/access.log")"
run "python3 over mTLS" "hello from the backend" python3 -c \
    "import urllib.request; print(urllib.request.urlopen('http://secure:$tport/', timeout=20).read().decode().strip())"
for _ in $(seq 1 50); do grep -q 'sa/web' "$TMP/server-access.log" "$R$O/access.log" 2> /dev/null && break; sleep 0.1; done
grep -q '"service":"secure".*"peer_identity":"spiffe://test.mesh/ns/prod/sa/orders"' "$R$O/access.log" ||
    fail "no mTLS line for secure: $(cat "$R$O/access.log")"
lines=$(wc -l < "$R$O/access.log")
run "curl by address" "hello from the backend" curl -sS --max-time 20 "http://127.0.0.3:$port/"
[ "$(wc -l < "$R$O/access.log")" = "$lines" ] || fail "a connection to an address not in the config was meshed"
ok "only what is configured is meshed: curl web by name, python3 secure over mTLS; curl by address untouched"

mkdir -p "$R$O/files"
out=$(inside timeout 120 python3 "$O/closeall.py" secure "$tport" "$O/files" 2> "$TMP/err") ||
    fail "closes every descriptor: $(tail -5 "$TMP/err")"
[ "$out" = ok ] || fail "closes every descriptor: $out"
grep -v "dup2 onto descriptor [0-9]* refused (EBUSY): the mesh holds that number" "$TMP/err" &&
    fail "closes every descriptor: said more than the refused dup2"
ok "python3 (3.9: a close() per number) closed every descriptor mid-life, and its fork child too: mTLS went on, files intact"
