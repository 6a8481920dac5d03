# [tls] dir: the identity read from the folders other tools write, and
# rotated the way they rotate it (issue 16, part 7):
# - a Kubernetes TLS Secret / cert-manager volume (tls.crt, tls.key, ca.crt
#   in a timestamped folder behind the `..data` symlink): a shimmed python3
#   server takes its identity from it; the writer's own swap (new folder,
#   ..data_tmp renamed over ..data) is served without a restart; a swap to a
#   folder whose key does not match the certificate keeps the identity in
#   force and says why;
# - spiffe-helper's folder (svid.pem, svid_key.pem, svid_bundle.pem), which
#   it rewrites file by file: curl calls the server by name with it (the
#   server's access log names curl's SPIFFE ID), and a server whose key has
#   been written but not yet its certificate keeps its identity until both are.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"
shims curl

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
for n in orders2 orders3; do
    leaf "$C" $n "URI:spiffe://test.mesh/ns/prod/sa/orders,DNS:orders" ca || fail "certificate $n"
done
serial_of() { echo "serial=$(openssl x509 -in "$1" -noout -serial | cut -d= -f2)"; }
mkdir -p "$TMP/www"; echo "hello over mTLS" > "$TMP/www/index.html"

# The Kubernetes atomic writer's steps: files into a new timestamped folder,
# ..data_tmp pointing to it, renamed over ..data, the names users see
# pointing through ..data, the old folder removed. ca.crt: $4, else the root.
k8s_write() {
    local dir=$1 cert=$2 key=$3 ca=${4:-$C/ca.pem} ts
    ts="..$(date +%Y_%m_%d_%H_%M_%S).$RANDOM$RANDOM"
    mkdir -p "$dir/$ts"
    cp "$cert" "$dir/$ts/tls.crt"; cp "$key" "$dir/$ts/tls.key"; cp "$ca" "$dir/$ts/ca.crt"
    local old; old=$(readlink "$dir/..data" || true)
    ln -s "$ts" "$dir/..data_tmp"
    mv -T "$dir/..data_tmp" "$dir/..data"
    for f in tls.crt tls.key ca.crt; do [ -L "$dir/$f" ] || ln -s "..data/$f" "$dir/$f"; done
    [ -n "$old" ] && rm -rf "${dir:?}/$old"
    return 0
}
# Until the served certificate has the serial $2 (the watcher's interval is
# 200 ms; 10 s at most), or fail with $3.
wait_serial() {
    local port=$1 want=$2 got=
    for _ in $(seq 1 100); do
        got=$(openssl s_client -connect "127.0.0.2:$port" -cert "$C/web.pem" -key "$C/web.key" \
              -CAfile "$C/ca.pem" < /dev/null 2>/dev/null | openssl x509 -noout -serial)
        [ "$got" = "$want" ] && return 0
        sleep 0.1
    done
    fail "$3: serving $got, want $want"
}
wait_log() {   # until file $1 has $3 lines matching $2
    for _ in $(seq 1 100); do [ "$(grep -c -- "$2" "$1")" -ge "$3" ] && return 0; sleep 0.1; done
    fail "no \"$2\" (x$3) in $1: $(tail -3 "$1")"
}

# serve NAME DIR PORT [LINE...]: python3's http.server on 127.0.0.2:PORT,
# shimmed, a strict port whose identity is [tls] dir DIR (LINE...: more
# [tls] lines); its config, log and access log are $TMP/NAME.ini, .log and
# .access. Returns once it listens.
serve() {
    local name=$1 dir=$2 port=$3
    shift 3
    { printf '[meshim]\nlog_level = info\naccess_log = %s\n[tls]\ndir = %s\n' "$TMP/$name.access" "$dir"
      printf '%s\n' "$@"
      printf '[inbound:%s]\ntls = strict\n' "$port"; } > "$TMP/$name.ini"
    serve_www "$TMP/$name.ini" "$port" "$TMP/$name.log"
}

# --- the server: a Secret volume -----------------------------------------
secret=$TMP/secret
mkdir -p "$secret"
k8s_write "$secret" "$C/orders.pem" "$C/orders.key"
port=$(free_port)
serve server "$secret" "$port" "reload_interval = 200ms"

# --- the client: spiffe-helper's folder, curl by name --------------------
svid=$TMP/svid
mkdir -p "$svid"
cp "$C/web.pem" "$svid/svid.pem"; cp "$C/web.key" "$svid/svid_key.pem"; cp "$C/ca.pem" "$svid/svid_bundle.pem"
printf '[meshim]\nlog_level = info\n[tls]\ndir = %s\n[service:orders]\nendpoints = 127.0.0.2:%s\ntls = mtls\nidentity = spiffe://test.mesh/ns/prod/sa/orders\n' \
    "$svid" "$port" > "$TMP/client.ini"
out=$(MESHIM_CONFIG=$TMP/client.ini shimmed curl -sS --max-time 10 "http://orders:$port/" 2> "$TMP/curl.err") ||
    fail "curl over mTLS with [tls] dir: $(tail -3 "$TMP/curl.err")"
[ "$out" = "hello over mTLS" ] || fail "curl got \"$out\""
grep -q "identity loaded from $svid/svid.pem (spiffe-helper" "$TMP/curl.err" ||
    fail "the client did not say where its identity came from: $(cat "$TMP/curl.err")"
wait_log "$TMP/server.access" 'spiffe://test.mesh/ns/prod/sa/web' 1
grep -q "identity loaded from $secret/\.\.[0-9_.]*/tls.crt (kubernetes" "$TMP/server.log" ||
    fail "the server did not load from the Secret's snapshot: $(cat "$TMP/server.log")"
ok "curl (spiffe-helper's folder) by name to python3 (a Secret volume's folder) over mTLS; the server logged curl's SPIFFE ID"

# --- the Secret rotated by the writer's own swap ---------------------------
wait_serial "$port" "$(serial_of "$C/orders.pem")" "before the swap"
k8s_write "$secret" "$C/orders2.pem" "$C/orders2.key"
wait_serial "$port" "$(serial_of "$C/orders2.pem")" "after the ..data swap"
wait_log "$TMP/server.log" "identity reloaded from $secret/\.\.[0-9_.]*/tls.crt" 1
ok "the ..data swap picked up without a restart: $(serial_of "$C/orders2.pem")"

# --- a swap to a folder whose key is not the certificate's ------------------
k8s_write "$secret" "$C/orders3.pem" "$C/orders2.key"
wait_log "$TMP/server.log" "\[tls\] key $secret/.*/tls.key: .*; the identity loaded before stays" 1
wait_serial "$port" "$(serial_of "$C/orders2.pem")" "after a swap to a mismatched key"
out=$(MESHIM_CONFIG=$TMP/client.ini shimmed curl -sS --max-time 10 "http://orders:$port/" 2> "$TMP/curl.err") ||
    fail "curl after the bad swap: $(tail -3 "$TMP/curl.err")"
k8s_write "$secret" "$C/orders3.pem" "$C/orders3.key"
wait_serial "$port" "$(serial_of "$C/orders3.pem")" "after the swap that mends it"
ok "a swap to a mismatched key kept the identity in force (and said why); the next good swap took"

# --- spiffe-helper rewrites in place: half written keeps the identity ------
p2=$(free_port)
sdir=$TMP/svid-server
mkdir -p "$sdir"
cp "$C/orders.pem" "$sdir/svid.pem"; cp "$C/orders.key" "$sdir/svid_key.pem"; cp "$C/ca.pem" "$sdir/svid_bundle.pem"
serve server2 "$sdir" "$p2" "reload_interval = 200ms"
wait_serial "$p2" "$(serial_of "$C/orders.pem")" "spiffe-helper folder"
cp "$C/orders2.key" "$sdir/svid_key.pem.tmp" && mv "$sdir/svid_key.pem.tmp" "$sdir/svid_key.pem"
wait_log "$TMP/server2.log" "\[tls\] key $sdir/svid_key.pem: .*; the identity loaded before stays" 1
wait_serial "$p2" "$(serial_of "$C/orders.pem")" "half-written spiffe-helper folder"
cp "$C/orders2.pem" "$sdir/svid.pem.tmp" && mv "$sdir/svid.pem.tmp" "$sdir/svid.pem"
wait_serial "$p2" "$(serial_of "$C/orders2.pem")" "spiffe-helper folder written through"
ok "spiffe-helper's folder half rewritten kept the identity; written through, the new one took"

# --- an intermediate issuer: tls.crt is the leaf and the intermediate ------
# cert-manager's usual layout when its issuer is an intermediate CA: the
# peer trusts the root alone (ca.crt), so each end must send the chain.
intermediate_ca "$C" int-ca || fail "intermediate CA"
leaf "$C" orders-int "URI:spiffe://test.mesh/ns/prod/sa/orders,DNS:orders" int-ca || fail "certificate orders-int"
leaf "$C" chained "URI:spiffe://test.mesh/ns/prod/sa/chained" int-ca || fail "certificate chained"
cat "$C/orders-int.pem" "$C/int-ca.pem" > "$C/orders-chain.pem"
cat "$C/chained.pem" "$C/int-ca.pem" > "$C/chained-chain.pem"
p3=$(free_port)
isecret=$TMP/secret-int
mkdir -p "$isecret"
k8s_write "$isecret" "$C/orders-chain.pem" "$C/orders-int.key"
serve server3 "$isecret" "$p3"
openssl s_client -connect "127.0.0.2:$p3" -cert "$C/web.pem" -key "$C/web.key" -CAfile "$C/ca.pem" \
    -verify_return_error -showcerts < /dev/null > "$TMP/chain.out" 2>&1 || fail "openssl s_client to the chained server: $(tail -3 "$TMP/chain.out")"
[ "$(grep -c 'BEGIN CERTIFICATE' "$TMP/chain.out")" -eq 2 ] || fail "the server sent no intermediate: $(grep -A4 'Certificate chain' "$TMP/chain.out")"
# The CAs it names when it asks for the client's certificate: its bundle's.
grep -A1 '^Acceptable client certificate CA names' "$TMP/chain.out" | grep -qx 'CN = meshim test CA' ||
    fail "the server listed no CA of its bundle: $(grep -A2 'Acceptable client' "$TMP/chain.out")"
sed -i "s|^endpoints = .*|endpoints = 127.0.0.2:$p3|" "$TMP/client.ini"
out=$(MESHIM_CONFIG=$TMP/client.ini shimmed curl -sS --max-time 10 "http://orders:$p3/" 2> "$TMP/curl.err") ||
    fail "curl to a server whose certificate an intermediate issued: $(tail -3 "$TMP/curl.err")"
[ "$out" = "hello over mTLS" ] || fail "curl got \"$out\""
# The other way: a client whose certificate the intermediate issued, to the
# first server (root only).
csvid=$TMP/svid-chained
mkdir -p "$csvid"
cp "$C/chained-chain.pem" "$csvid/svid.pem"; cp "$C/chained.key" "$csvid/svid_key.pem"; cp "$C/ca.pem" "$csvid/svid_bundle.pem"
sed "s|^dir = .*|dir = $csvid|; s|^endpoints = .*|endpoints = 127.0.0.2:$port|" "$TMP/client.ini" > "$TMP/client-chained.ini"
out=$(MESHIM_CONFIG=$TMP/client-chained.ini shimmed curl -sS --max-time 10 "http://orders:$port/" 2> "$TMP/curl.err") ||
    fail "curl with a certificate an intermediate issued: $(tail -3 "$TMP/curl.err")"
[ "$out" = "hello over mTLS" ] || fail "curl (chained) got \"$out\""
wait_log "$TMP/server.access" 'spiffe://test.mesh/ns/prod/sa/chained' 1
ok "an intermediate issuer (tls.crt: leaf and intermediate; ca.crt: the root): the server sends both, curl reaches it; a client's chain reaches a server too"

# The same client with its leaf alone (the intermediate left out of
# svid.pem): the server cannot verify it, and the client's own log says why
# when it loads the identity, not only "unknown ca" at each connect.
lsvid=$TMP/svid-leaf
mkdir -p "$lsvid"
cp "$C/chained.pem" "$lsvid/svid.pem"; cp "$C/chained.key" "$lsvid/svid_key.pem"; cp "$C/ca.pem" "$lsvid/svid_bundle.pem"
sed "s|^dir = .*|dir = $lsvid|" "$TMP/client-chained.ini" > "$TMP/client-leaf.ini"
out=$(MESHIM_CONFIG=$TMP/client-leaf.ini shimmed curl -sS --max-time 10 "http://orders:$port/" 2> "$TMP/leaf.err") &&
    fail "a client without its intermediate was accepted: $out"
grep -q "warn: \[tls\] ca $lsvid/svid_bundle.pem does not verify cert $lsvid/svid.pem (unable to get local issuer certificate): peers that trust the same bundle refuse it" \
    "$TMP/leaf.err" || fail "no warning at the load of an identity its bundle does not verify: $(cat "$TMP/leaf.err")"
[ "$(grep -c 'does not verify cert' "$TMP/leaf.err")" -eq 1 ] || fail "the warning is not once per load: $(cat "$TMP/leaf.err")"
grep -q "does not verify cert" "$TMP/curl.err" "$TMP/server.log" && fail "a warning for an identity that verifies"
ok "a leaf without its intermediate: refused by the server, and one warning at the client's load says why"

# The intermediate as the trust anchor, at both ends: ca.crt is the issuing
# CA alone (cert-manager's CA issuer whose certificate is an intermediate; a
# Vault intermediate), no root. Every certificate of the bundle is an anchor
# (as for Go, rustls, Java and curl); OpenSSL's default wanted a root.
p4=$(free_port)
asecret=$TMP/secret-anchor
mkdir -p "$asecret"
k8s_write "$asecret" "$C/orders-chain.pem" "$C/orders-int.key" "$C/int-ca.pem"
serve server4 "$asecret" "$p4"
cp "$C/int-ca.pem" "$csvid/svid_bundle.pem"
sed -i "s|^endpoints = .*|endpoints = 127.0.0.2:$p4|" "$TMP/client-chained.ini"
out=$(MESHIM_CONFIG=$TMP/client-chained.ini shimmed curl -sS --max-time 10 "http://orders:$p4/" 2> "$TMP/curl.err") ||
    fail "curl, both ends trusting the intermediate alone: $(tail -3 "$TMP/curl.err" "$TMP/server4.log")"
[ "$out" = "hello over mTLS" ] || fail "curl (intermediate anchor) got \"$out\""
wait_log "$TMP/server4.access" 'spiffe://test.mesh/ns/prod/sa/chained' 1
# Still a chain to that anchor: a certificate the root issued directly is not.
sed "s|^endpoints = .*|endpoints = 127.0.0.2:$p4|" "$TMP/client.ini" > "$TMP/client-root.ini"
out=$(MESHIM_CONFIG=$TMP/client-root.ini shimmed curl -sS --max-time 10 "http://orders:$p4/" 2> "$TMP/curl.err") &&
    fail "a client certificate from outside the intermediate was accepted: $out"
wait_log "$TMP/server4.log" "refused: TLS handshake" 1
ok "the intermediate as the trust anchor (ca.crt the issuing CA alone): served and verified at both ends; a certificate the root issued directly is refused"

# --- a folder others may write to is refused, in one line -------------------
mkdir -p "$TMP/open"; cp "$C/web.pem" "$TMP/open/tls.crt"; chmod 0777 "$TMP/open"
printf '[tls]\ndir = %s\n[service:orders]\nendpoints = 127.0.0.2:%s\ntls = mtls\n' "$TMP/open" "$port" > "$TMP/open.ini"
MESHIM_CONFIG=$TMP/open.ini shimmed curl -sS --max-time 10 "http://orders:$port/" > /dev/null 2> "$TMP/open.err" &&
    fail "curl succeeded with an identity folder anyone may write to"
grep -q "\[tls\] dir $TMP/open: anyone may write to it; connections that need mTLS fail" "$TMP/open.err" ||
    fail "no clear refusal: $(cat "$TMP/open.err")"
ok "an identity folder anyone may write to is refused: $(grep -o '\[tls\] dir.*' "$TMP/open.err" | head -1)"
