# Sourced by the mTLS tests: make_certs DIR writes a test PKI with openssl,
# ECDSA P-256 keys and SPIFFE IDs as URI SANs (trust domain test.mesh):
#   ca.pem                     the trust bundle
#   orders.pem / orders.key    spiffe://test.mesh/ns/prod/sa/orders, DNS orders
#   web.pem / web.key          spiffe://test.mesh/ns/prod/sa/web
#   bad.pem / bad.key          spiffe://test.mesh/ns/dev/sa/bad (same CA)
#   twosans.pem / .key         .../ns/dev/sa/bad and .../ns/prod/sa/web (two URI SANs)
#   dotdot.pem / .key          spiffe://test.mesh/ns/prod/../dev/sa/bad
#   expired.pem / expired.key  web's identity, valid only in 2020
#   rogue-ca.pem, rogue.pem / rogue.key   web's identity from another CA
make_certs() {
    local d=$1 n
    mkdir -p "$d/ca.db"
    : > "$d/ca.db/index.txt"
    echo 1000 > "$d/ca.db/serial"
    cat > "$d/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
database = $d/ca.db/index.txt
serial = $d/ca.db/serial
new_certs_dir = $d/ca.db
certificate = $d/ca.pem
private_key = $d/ca.key
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
[any]
commonName = supplied
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = \${ENV::SAN}
[intca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
CNF
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=meshim test CA" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=rogue CA" -keyout "$d/rogue-ca.key" -out "$d/rogue-ca.pem" 2>/dev/null
    leaf "$d" orders "URI:spiffe://test.mesh/ns/prod/sa/orders,DNS:orders" ca
    leaf "$d" web "URI:spiffe://test.mesh/ns/prod/sa/web" ca
    leaf "$d" bad "URI:spiffe://test.mesh/ns/dev/sa/bad" ca
    leaf "$d" expired "URI:spiffe://test.mesh/ns/prod/sa/web" ca -startdate 20200101000000Z -enddate 20200102000000Z
    leaf "$d" rogue "URI:spiffe://test.mesh/ns/prod/sa/web" rogue-ca
    # The security review's finding 6: a refused identity first and an
    # allowed one second; a path that climbs out of ns/prod.
    leaf "$d" twosans "URI:spiffe://test.mesh/ns/dev/sa/bad,URI:spiffe://test.mesh/ns/prod/sa/web" ca
    leaf "$d" dotdot "URI:spiffe://test.mesh/ns/prod/../dev/sa/bad" ca
}

# leaf DIR NAME SAN CA [openssl ca options]: NAME.key and NAME.pem.
leaf() {
    local d=$1 name=$2 san=$3 ca=$4
    shift 4
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
        -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
    SAN=$san openssl ca -batch -config "$d/ca.cnf" -extensions leaf -notext -days 365 \
        -cert "$d/$ca.pem" -keyfile "$d/$ca.key" -in "$d/$name.csr" -out "$d/$name.pem" "$@" \
        2>"$d/$name.err" || { cat "$d/$name.err" >&2; return 1; }
}

# intermediate_ca DIR NAME: NAME.pem / NAME.key, a CA that ca.pem signed, as
# cert-manager's issuers often are; leaf DIR LEAF SAN NAME then issues from it.
intermediate_ca() {
    local d=$1 name=$2
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
        -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
    SAN=unused openssl ca -batch -config "$d/ca.cnf" -extensions intca -notext -days 3650 \
        -cert "$d/ca.pem" -keyfile "$d/ca.key" -in "$d/$name.csr" -out "$d/$name.pem" \
        2>"$d/$name.err" || { cat "$d/$name.err" >&2; return 1; }
}

# tls_ini FILE NAME [more lines]: an INI with $C/NAME.pem and $C/NAME.key as
# the identity and $C/ca.pem as the trust bundle, then the lines given.
# ini_access_log FILE PATH: a tls_ini file's [meshim] section gains
# access_log = PATH.
ini_access_log() {
    sed -i "s|^log_level = info\$|&\naccess_log = $2|" "$1"
}

tls_ini() {
    local file=$1 name=$2
    shift 2
    { printf '[meshim]\nlog_level = info\n[tls]\ncert = %s\nkey = %s\nca = %s\n' \
          "$C/$name.pem" "$C/$name.key" "$C/ca.pem"
      printf '%s\n' "$@"; } > "$file"
}

# serve_www INI PORT LOG: python3's http.server for $TMP/www on
# 127.0.0.2:PORT, meshed with INI (its [inbound:PORT] section), its output
# in LOG; recorded in PIDS, and waited for.
serve_www() {
    MESHIM_CONFIG=$1 LD_PRELOAD="$MESHIM_PRELOAD" \
        python3 -m http.server --bind 127.0.0.2 --directory "$TMP/www" "$2" > "$3" 2>&1 &
    PIDS+=($!)
    wait_port 127.0.0.2 "$2"
}

# module_ask PRELOAD [DIR]: one GET / over mTLS to orders:$port from a
# python3 client that preloads PRELOAD with $TMP/client.ini (run in DIR,
# default $TMP); sets status, and from: the file its TLS module was mapped
# from (beside the library, the stats folder's, a private copy's memfd, or
# "none"). Its stderr in $TMP/client.err.
module_ask() {
    local out
    out=$(cd "${2:-$TMP}" && MESHIM_CONFIG=$TMP/client.ini LD_PRELOAD="$1" python3 - "$port" 2> "$TMP/client.err" <<'PY'
import sys, urllib.request
status = urllib.request.urlopen("http://orders:%s/" % sys.argv[1], timeout=10).status
maps = {l.split(None, 5)[5].strip().replace(" (deleted)", "")
        for l in open("/proc/self/maps") if "tls-module" in l or "meshim-tls" in l}
print(status, " ".join(sorted(maps)) or "none")
PY
)
    read -r status from <<< "$out"
}

# module_id BUILD: the TLS module's ID in that build (the 16 hex digits its
# file names carry: tls-module-ID.so, libmeshim-tls-ID.so).
module_id() { sed -n 's/.*TLS_MODULE_ID "\(.*\)"/\1/p' "$1/tls_module_id.h"; }
