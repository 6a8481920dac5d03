# A bad config stops the program at start with status 78 and a message that
# names file, line and key; on_error = passthrough runs it unmeshed.
# lanes: first (one of the longest: tests/integration/run starts it early)
. "$(dirname "$0")/lib.sh"

port=$(free_port)
start_backends "$port"
cat > "$TMP/bad.ini" <<INI
[service:orders]
endpoints = 127.0.0.2:$port
retries = two
INI
fetch() {   # fetch URL: a python3 client
    shimmed python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())' "$1"
}
out=$(MESHIM_CONFIG=$TMP/bad.ini fetch "http://127.0.0.2:$port/who" 2>&1)
rc=$?
[ "$rc" -eq 78 ] || fail "bad config: python3 exited $rc, want 78 ($out)"
echo "$out" | grep -q "^meshim\[[0-9]*\]: error: $TMP/bad.ini:3: retries: not a number: \"two\"$" \
    || fail "message does not name file, line and key: $out"
ok "on_error = exit: status 78, '$(echo "$out" | head -1)'"

out=$(meshim check -c "$TMP/bad.ini" 2>&1)
rc=$?
[ "$rc" -eq 78 ] || fail "meshim check on a bad file exited $rc"
[ "$out" = "meshim: $TMP/bad.ini:3: retries: not a number: \"two\"" ] || fail "meshim check said: $out"
ok "meshim check: 78 and the same message"

printf '[meshim]\non_error = passthrough\n' | cat - "$TMP/bad.ini" > "$TMP/pass.ini"
out=$(MESHIM_CONFIG=$TMP/pass.ini fetch "http://127.0.0.2:$port/who" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "on_error = passthrough: python3 exited $rc ($out)"
echo "$out" | grep -q "retries: not a number" || fail "passthrough printed no message: $out"
echo "$out" | grep -qx "backend-2" || fail "passthrough did not run the program: $out"
out=$(MESHIM_CONFIG=$TMP/pass.ini shimmed getent hosts orders 2>/dev/null; echo "rc=$?")
[ "$out" = "rc=2" ] || fail "passthrough still meshes: $out"
ok "on_error = passthrough: message, program runs unmeshed"

# With MESHIM_LOG_FILE the shim's lines stay out of the program's output:
# a config error under passthrough goes only to the file; a warning at run
# time (every endpoint refusing) too; an error that stops the program goes
# to the file and to stderr, so that its user sees why.
out=$(MESHIM_LOG_FILE=$TMP/shim.log MESHIM_CONFIG=$TMP/pass.ini fetch "http://127.0.0.2:$port/who" 2>&1)
[ "$out" = "backend-2" ] || fail "passthrough with MESHIM_LOG_FILE: the program's output is not its own: $out"
grep -q "pass.ini:.*retries: not a number" "$TMP/shim.log" || fail "the config error is not in MESHIM_LOG_FILE: $(cat "$TMP/shim.log")"
dead=$(free_port)
printf '[service:dead]\nhosts = dead\nendpoints = 127.0.0.2:%s\nretries = 0\n' "$dead" > "$TMP/dead.ini"
out=$(MESHIM_LOG_FILE=$TMP/shim.log MESHIM_CONFIG=$TMP/dead.ini shimmed python3 -c '
import socket
try: socket.create_connection(("dead", 80), 5)
except OSError as e: print("refused", e.errno)' 2>&1)
[ "$out" = "refused 111" ] || fail "a run-time warning reached the program's output: $out"
grep -q "warn: dead: .*127.0.0.2:$dead" "$TMP/shim.log" || fail "the run-time warning is not in MESHIM_LOG_FILE: $(cat "$TMP/shim.log")"
out=$(MESHIM_LOG_FILE=$TMP/shim.log MESHIM_CONFIG=$TMP/bad.ini shimmed true 2>&1; echo "rc=$?")
echo "$out" | grep -q "bad.ini:3: retries: not a number" && echo "$out" | grep -q "rc=78" \
    || fail "an error that stops the program is not on stderr: $out"
[ "$(grep -c "bad.ini:3: retries: not a number" "$TMP/shim.log")" -eq 1 ] || fail "…nor once in the file: $(cat "$TMP/shim.log")"
ok "MESHIM_LOG_FILE keeps the shim's lines out of the program's output (78: stderr too)"

out=$(MESHIM_CONFIG=/nonexistent/meshim.ini shimmed true 2>&1; echo "rc=$?")
echo "$out" | grep -q "/nonexistent/meshim.ini: cannot read: No such file or directory" || fail "unreadable file: $out"
echo "$out" | grep -q "rc=78" || fail "unreadable file did not exit 78: $out"
ok "unreadable file: 78 and a clear message"

# A meshed root process starts a child as nobody, which inherits
# MESHIM_CONFIG naming a file only root may read: the child still fails
# closed (78), and the line says it is a permission problem, whose, and
# what to do.
cp "$TMP/pass.ini" "$TMP/root-only.ini"
chmod 600 "$TMP/root-only.ini"
chmod o+rx "$TMP"
out=$(MESHIM_CONFIG=$TMP/root-only.ini shimmed setpriv --reuid=65534 --regid=65534 --clear-groups \
      true 2>&1; echo "rc=$?")
echo "$out" | grep -q "rc=78" || fail "a child as nobody did not exit 78: $out"
echo "$out" | grep -q "$TMP/root-only.ini: cannot read: permission denied: this process runs as uid 65534 and the file is mode 0600, owner uid 0 (a process that switched user keeps MESHIM_CONFIG): make the file and its folders readable by that user" \
    || fail "the line does not say it is a permission problem: $out"
ok "a child as nobody, config readable by root only: 78, '$(echo "$out" | grep -m1 'permission denied')'"

# mTLS with an identity that cannot be loaded fails closed: one clear line,
# the connect fails, and nothing is sent in plaintext.
cat > "$TMP/notyet.ini" <<INI
[meshim]
log_level = warn
[tls]
cert = $TMP/missing-cert.pem
key = $TMP/missing-key.pem
ca = $TMP/missing-ca.pem
[service:orders]
endpoints = 127.0.0.2:$port
tls = mtls
retries = 0
INI
lines_before=$(grep -c "GET /who" "$TMP/backend2.log")
out=$(MESHIM_CONFIG=$TMP/notyet.ini fetch "http://orders:$port/who" 2>&1)
echo "$out" | grep -q "error: \[tls\] cert $TMP/missing-cert.pem: No such file or directory; connections that need mTLS fail" \
    || fail "no clear error for a missing certificate: $out"
echo "$out" | grep -qx "backend-2" && fail "mTLS without an identity went through in plaintext: $out"
[ "$(grep -c "GET /who" "$TMP/backend2.log")" -eq "$lines_before" ] || fail "the backend saw a plaintext request"
ok "mTLS with a missing certificate: one clear error, the connect fails, nothing in plaintext"

# That fault is the client's own: no attempt is made, so no endpoint is
# blamed. Before, each such connect was a failed attempt (and retried on
# the other endpoints): a few processes without their certificate (a
# Secret not mounted yet) ejected healthy endpoints in the host's table,
# and every other process of the host, with a good identity, was refused
# "no healthy endpoint" for 30 s.
sed -e "s|^endpoints = .*|endpoints = 127.0.0.2:$port, 127.0.0.4:$port|" -e "/^retries = 0/d" \
    "$TMP/notyet.ini" > "$TMP/noid.ini"
for i in 1 2 3 4 5 6; do
    MESHIM_CONFIG=$TMP/noid.ini fetch "http://orders:$port/who" > "$TMP/noid.$i" 2>&1 &&
        fail "a connect without an identity succeeded: $(cat "$TMP/noid.$i")"
    grep -q "warn: orders: connection refused: no usable mTLS identity in this process: \[tls\] cert $TMP/missing-cert.pem: No such file or directory" \
        "$TMP/noid.$i" || fail "no clear refusal: $(cat "$TMP/noid.$i")"
    grep -E "attempt [0-9]+ to|ejected" "$TMP/noid.$i" && fail "an attempt was made without an identity: $(cat "$TMP/noid.$i")"
done
cat > "$TMP/plain-same.ini" <<INI
[meshim]
log_level = warn
[service:orders]
endpoints = 127.0.0.2:$port
retries = 0
INI
out=$(MESHIM_CONFIG=$TMP/plain-same.ini fetch "http://orders:$port/who" 2>&1)
[ "$out" = "backend-2" ] || fail "another process after 6 connects without an identity: $out"
# The same for protocol = http: each request is answered 503 at once.
sed -e "s|^endpoints = .*|endpoints = 127.0.0.3:$port|" -e "s|^tls = mtls|tls = mtls\nprotocol = http|" \
    "$TMP/noid.ini" > "$TMP/noid-http.ini"
for i in 1 2 3 4 5 6; do
    MESHIM_CONFIG=$TMP/noid-http.ini fetch "http://orders:$port/who" > "$TMP/noidh.$i" 2>&1 &&
        fail "a request without an identity succeeded: $(cat "$TMP/noidh.$i")"
    grep -q "warn: orders: GET /who refused: no usable mTLS identity in this process: \[tls\] cert" "$TMP/noidh.$i" &&
        grep -q "HTTP Error 503" "$TMP/noidh.$i" || fail "no clear 503: $(cat "$TMP/noidh.$i")"
    grep -E "retried|ejected" "$TMP/noidh.$i" && fail "an attempt was made without an identity: $(cat "$TMP/noidh.$i")"
done
sed -i "s|^endpoints = .*|endpoints = 127.0.0.3:$port|" "$TMP/plain-same.ini"
out=$(MESHIM_CONFIG=$TMP/plain-same.ini fetch "http://orders:$port/who" 2>&1)
[ "$out" = "backend-3" ] || fail "another process after 6 requests without an identity: $out"
ok "6 connects and 6 requests (protocol = http) without an identity: refused at once (503), no attempt, no endpoint ejected (another process is served)"

# An encrypted key: OpenSSL asks for the pass phrase on the program's
# terminal by default, and the connect waited there for ever (curl with a
# terminal: "Enter PEM pass phrase:" on it, then nothing). Now it fails at
# once, saying why. script(1) gives the client (python3) a terminal.
. "$ROOT/tests/integration/certs.sh"
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
openssl ec -in "$C/web.key" -aes256 -passout pass:secret -out "$TMP/encrypted.key" 2> /dev/null ||
    fail "cannot encrypt a key"
sed -e "s|^cert = .*|cert = $C/web.pem|" -e "s|^key = .*|key = $TMP/encrypted.key|" -e "s|^ca = .*|ca = $C/ca.pem|" \
    "$TMP/notyet.ini" > "$TMP/encrypted.ini"
cat > "$TMP/get.py" <<'PY'
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1]).read().decode().strip())
PY
timeout 30 script -qec "env LD_PRELOAD='$MESHIM_PRELOAD' MESHIM_CONFIG='$TMP/encrypted.ini' python3 '$TMP/get.py' http://orders:$port/who" \
    /dev/null < /dev/null > "$TMP/tty.out" 2>&1
rc=$?
[ "$rc" -eq 124 ] && fail "a client with a terminal and an encrypted key still waits after 30 s: $(cat "$TMP/tty.out")"
grep -q "pass phrase" "$TMP/tty.out" && fail "the shim asked for a pass phrase on the program's terminal: $(cat "$TMP/tty.out")"
grep -q "error: \[tls\] key $TMP/encrypted.key: an encrypted private key: meshim reads it unencrypted" "$TMP/tty.out" ||
    fail "no clear error for an encrypted key: rc=$rc $(cat "$TMP/tty.out")"
grep -q "backend-2" "$TMP/tty.out" && fail "an encrypted key let the request through in plaintext"
ok "an encrypted key, python3 with a terminal: no pass phrase asked, the connect fails at once (exit $rc), one clear error"

# An identity whose certificate has expired (cert-manager that stopped
# renewing it): peers refuse it, so this process's connects are refused at
# once, saying so, with no attempt. Before, each went to the server, whose
# refusal came back as a reset or a failed connect with no word of why on
# the client's side, and counted against the endpoint.
sed -e "s|^cert = .*|cert = $C/expired.pem|" -e "s|^key = .*|key = $C/expired.key|" -e "s|^ca = .*|ca = $C/ca.pem|" \
    "$TMP/noid.ini" > "$TMP/expired.ini"
out=$(MESHIM_CONFIG=$TMP/expired.ini fetch "http://orders:$port/who" 2>&1) && fail "an expired identity connected: $out"
echo "$out" | grep -q "warn: orders: connection refused: no usable mTLS identity in this process: \[tls\] cert $C/expired.pem expired on 2020-" ||
    fail "no clear refusal for an expired certificate: $out"
echo "$out" | grep -E "attempt [0-9]+ to" && fail "an attempt was made with an expired certificate: $out"
ok "an expired certificate: connects refused at once, 'expired on $(echo "$out" | sed -n 's/.*expired on \([0-9-]*\).*/\1/p')', no attempt"

cat > "$TMP/notyet.ini" <<INI
[service:orders]
endpoints = 127.0.0.2:$port
INI
out=$(meshim check -c "$TMP/notyet.ini")
echo "$out" | grep -q "endpoints  127.0.0.2:$port" || fail "meshim check output: $out"
out=$(cd "$TMP" && meshim check notyet.ini)
echo "$out" | grep -q "^config: $TMP/notyet.ini$" && echo "$out" | grep -q "endpoints  127.0.0.2:$port" ||
    fail "meshim check FILE (without -c): $out"
ok "meshim check lists the service (-c FILE, or FILE)"
printf 'health_check = http\nhealth_path = /healthz\nhealth_interval = 2s\npanic_threshold = 50\nprotocol = http\nmax_requests = 64\n' |
    cat "$TMP/notyet.ini" - > "$TMP/checked.ini"
out=$(meshim check -c "$TMP/checked.ini")
echo "$out" | grep -qx "  health     http GET /healthz every 2000ms (timeout 1000ms), down after 3 failures, up after 2 successes" &&
    echo "$out" | grep -qx "  panic      below 50% of endpoints usable, connects go to all" &&
    echo "$out" | grep -qx "  protocol   http (retry_on connect-failure; max_requests 64)" ||
    fail "meshim check does not say how the service is checked, its panic threshold or max_requests: $out"
out=$(printf '[service:orders]\nendpoints = 127.0.0.2:1\nhealth_pth = /x\n' > "$TMP/typo.ini"; meshim check -c "$TMP/typo.ini" 2>&1)
[ "$out" = "meshim: $TMP/typo.ini:3: health_pth: unknown key in [service:orders] (did you mean health_path?)" ] ||
    fail "an unknown key's line does not name the key it is a typo of: $out"
ok "meshim check: the health check, panic threshold and max_requests listed; the key a typo meant said"

# Log paths the shim would refuse at run time are said at check time:
# /dev/stdout (a symbolic link, never followed) and a folder.
{ printf '[meshim]\naccess_log = /dev/stdout\nlog_file = %s\n' "$TMP"; cat "$TMP/notyet.ini"; } > "$TMP/logs.ini"
meshim check -c "$TMP/logs.ini" > /dev/null 2> "$TMP/logs.err" || fail "meshim check refused the log paths: $(cat "$TMP/logs.err")"
grep -qx "meshim: warning: access_log = /dev/stdout is a symbolic link, never followed: its lines would go to stderr; name the file itself, or stderr" \
    "$TMP/logs.err" || fail "no warning for access_log = /dev/stdout: $(cat "$TMP/logs.err")"
grep -qx "meshim: warning: log_file = $TMP is a folder: its lines would go to stderr; name the file itself, or stderr" \
    "$TMP/logs.err" || fail "no warning for a log_file folder: $(cat "$TMP/logs.err")"
ok "meshim check warns of log paths the shim would refuse (/dev/stdout, a folder)"

# Runs the program with the shim: -c FILE, exit status passed on.
out=$(meshim -c "$TMP/notyet.ini" getent hosts orders 2>/dev/null | awk '{print $1}')
case "$out" in 127.77.*) ;; *) fail "meshim -c FILE getent hosts orders: '$out'" ;; esac
meshim -c "$TMP/notyet.ini" sh -c 'exit 3' 2>/dev/null
[ $? -eq 3 ] || fail "meshim did not pass the exit status on"
meshim -c "$TMP/bad.ini" true 2>/dev/null
[ $? -eq 78 ] || fail "meshim -c BAD did not exit 78"
ok "meshim [-c FILE] PROGRAM"

# The reference config and the example mesh are valid.
meshim check -c config/meshim.ini > /dev/null || fail "config/meshim.ini does not validate"
meshim check -c examples/mesh.ini > /dev/null || fail "examples/mesh.ini does not validate"
ok "config/meshim.ini and examples/mesh.ini validate"

# meshim check loads the identity as the shim will, and says what peers
# will see of it: its name and how long it is valid; files the shim could
# not load, and a certificate that has expired, exit 78 with the shim's own
# message; a certificate the bundle does not verify is warned of.
identity() {    # identity CERT KEY: meshim check of a [tls] with them, out and err apart
    printf '[tls]\ncert = %s\nkey = %s\nca = %s\n' "$1" "$2" "$C/ca.pem" > "$TMP/id.ini"
    meshim check -c "$TMP/id.ini" > "$TMP/id.out" 2> "$TMP/id.err"
}
identity "$C/web.pem" "$C/web.key" || fail "meshim check refused a good identity: $(cat "$TMP/id.err")"
grep -qE "^  identity   spiffe://test.mesh/ns/prod/sa/web \(serial 1001, valid until 20[0-9-]+ [0-9:]+ UTC\)$" \
    "$TMP/id.out" || fail "no identity line: $(cat "$TMP/id.out" "$TMP/id.err")"
[ -s "$TMP/id.err" ] && fail "a good identity warned: $(cat "$TMP/id.err")"
identity /nonexistent.pem "$C/web.key"; rc=$?
[ "$rc" -eq 78 ] && [ "$(cat "$TMP/id.err")" = "meshim: [tls] cert /nonexistent.pem: No such file or directory: connections that need mTLS would fail" ] ||
    fail "a missing cert: rc=$rc $(cat "$TMP/id.err")"
identity "$C/web.pem" "$C/orders.key"; rc=$?
[ "$rc" -eq 78 ] && grep -q "^meshim: \[tls\] key $C/orders.key: key values mismatch" "$TMP/id.err" ||
    fail "another identity's key: rc=$rc $(cat "$TMP/id.err")"
identity "$C/web.key" "$C/web.key"; rc=$?
[ "$rc" -eq 78 ] && grep -q "^meshim: \[tls\] cert $C/web.key: no PEM certificate in it: " "$TMP/id.err" ||
    fail "a key given as the cert: rc=$rc $(cat "$TMP/id.err")"
identity "$C/web.pem" "$C/web.pem"; rc=$?
[ "$rc" -eq 78 ] && grep -q "^meshim: \[tls\] key $C/web.pem: no PEM private key in it: " "$TMP/id.err" ||
    fail "a cert given as the key: rc=$rc $(cat "$TMP/id.err")"
identity "$C/web.pem" "$TMP/encrypted.key" < /dev/null; rc=$?
[ "$rc" -eq 78 ] && grep -q "^meshim: \[tls\] key $TMP/encrypted.key: an encrypted private key: " "$TMP/id.err" ||
    fail "an encrypted key: rc=$rc $(cat "$TMP/id.err")"
# A key only root may read, checked by another user: the program (root)
# reads it, so check warns that it could not look, and does not fail.
cp "$C/web.key" "$TMP/root-only.key"; chmod 0600 "$TMP/root-only.key"
identity "$C/web.pem" "$TMP/root-only.key" || fail "a good identity: $(cat "$TMP/id.err")"
chmod 0644 "$TMP/id.ini"
setpriv --reuid=65534 --regid=65534 --clear-groups env LD_PRELOAD="$MESHIM_CMD_PRELOAD" "$MESHIM_CMD" check \
    -c "$TMP/id.ini" > /dev/null 2> "$TMP/id.err" || fail "a key nobody may not read failed nobody's check: $(cat "$TMP/id.err")"
grep -q "^meshim: warning: \[tls\] key $TMP/root-only.key: this user (uid 65534) may not read it, so the identity is not checked here" \
    "$TMP/id.err" || fail "no warning for a key this user may not read: $(cat "$TMP/id.err")"
mkfifo "$TMP/fifo"       # no one writes to it: opening it to read would wait for ever
printf '[tls]\ncert = %s\nkey = %s\nca = %s\n' "$TMP/fifo" "$C/web.key" "$C/ca.pem" > "$TMP/fifo.ini"
timeout 20 env LD_PRELOAD="$MESHIM_CMD_PRELOAD" "$MESHIM_CMD" check -c "$TMP/fifo.ini" > /dev/null 2> "$TMP/id.err"; rc=$?
[ "$rc" -eq 78 ] && grep -q "^meshim: \[tls\] cert $TMP/fifo: not a regular file: " "$TMP/id.err" ||
    fail "a FIFO as the cert: rc=$rc $(cat "$TMP/id.err")"
identity "$C/expired.pem" "$C/expired.key"; rc=$?
[ "$rc" -eq 78 ] && grep -q "^meshim: \[tls\] cert $C/expired.pem expired on 2020-01-02 00:00 UTC: peers refuse it$" "$TMP/id.err" ||
    fail "an expired cert: rc=$rc $(cat "$TMP/id.err")"
identity "$C/rogue.pem" "$C/rogue.key" || fail "a cert of another CA is refused, not warned of: $(cat "$TMP/id.err")"
grep -q "^meshim: warning: \[tls\] ca $C/ca.pem does not verify cert $C/rogue.pem (unable to get local issuer certificate)" \
    "$TMP/id.err" || fail "no warning for a cert the bundle does not verify: $(cat "$TMP/id.err")"
leaf "$C" soon "URI:spiffe://test.mesh/ns/prod/sa/web" ca -days 2 || fail "cannot make a certificate"
identity "$C/soon.pem" "$C/soon.key" || fail "a cert valid 2 more days is refused: $(cat "$TMP/id.err")"
grep -qE "^meshim: warning: \[tls\] cert $C/soon.pem expires in 4[0-8] hours$" "$TMP/id.err" ||
    fail "no warning for a cert about to expire: $(cat "$TMP/id.err")"
ok "meshim check loads the identity: its name and expiry; a missing file, a file of the wrong kind, a FIFO, an encrypted key, a key of another cert, an expired cert refused; another CA's cert, one that expires within 7 days, and a key this user may not read warned of"

# A permissive port with `allow` lets plaintext clients past it (review
# finding 13): meshim check says so, and still accepts the file.
cat > "$TMP/permissive.ini" <<INI
[tls]
cert = $C/web.pem
key = $C/web.key
ca = $C/ca.pem
[inbound:8443]
tls = permissive
allow = spiffe://test.mesh/ns/prod/**
INI
out=$(meshim check -c "$TMP/permissive.ini" 2>&1) || fail "meshim check refused a permissive port: $out"
echo "$out" | grep -q "permissive.ini:5: \[inbound:8443\] is permissive: plaintext clients are let in without an identity, so \`allow\` only limits clients that use mTLS" ||
    fail "no warning for allow on a permissive port: $out"
ok "meshim check warns that a permissive port lets plaintext clients past allow"
