# The TLS module beside the library (libmeshim-tls-ID.so: make, make install,
# the .deb and the image put it there) is opened as it is, before anything
# else: no module file is made in the stats folder, and the library's own
# copy is not compared with one. It is opened only when nobody but whoever
# can change the library can change it (the library's owner, no write for
# its group or others) and it is whole; a symlink, or a library named by a
# relative path, is not followed there. Each refused one is said at debug
# level (and by meshim doctor) and the process gets its module through the
# stats folder, as a library copied alone does (t_tls_module_shared).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
tls_ini "$TMP/client.ini" web "[service:orders]" "endpoints = 127.0.0.2:$port" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders"
sed -i 's/^log_level = info/log_level = debug/' "$TMP/client.ini"

beside=$(ls "$ROOT/$BUILD"/libmeshim-tls-*.so 2>/dev/null)
[ "$(echo "$beside" | wc -w)" = 1 ] || fail "want one module file beside $MESHIM_LIB, found: '$beside'"
name=$(basename "$beside")
[ "$name" = "libmeshim-tls-$(module_id "$ROOT/$BUILD").so" ] ||
    fail "$name does not carry the build's module ID"
cmp -s "$beside" "$ROOT/$BUILD/tls-module.so" || fail "$name is not the build's module"

mkdir "$TMP/www"
serve_www "$TMP/server.ini" "$port" "$TMP/server.log"
server=${PIDS[-1]}

said() { grep -q "TLS module: not beside the library.*$1" "$TMP/client.err"; }

# The build's library: its module from beside it, in the server and the
# client; nothing written to the stats folder.
module_ask "$MESHIM_PRELOAD"
[ "$status" = 200 ] || fail "mTLS request failed: $(tail -3 "$TMP/client.err")"
[ "$from" = "$beside" ] || fail "the client's module came from '$from', not $beside"
grep -q "$beside" "/proc/$server/maps" || fail "the server does not map $beside: $(grep tls "/proc/$server/maps")"
ls "$MESHIM_STATS_DIR" | grep -q tls-module && fail "a module file was made in the stats folder: $(ls "$MESHIM_STATS_DIR")"
ok "the build's library opens the module beside it ($name), in the server and the client; none made in the stats folder"

# An installed copy (the library 0755, the module 0644, as make install
# and the .deb put them).
inst=$TMP/inst
mkdir -m 0755 "$inst"
install -m 0755 "$MESHIM_LIB" "$inst/libmeshim.so"
install -m 0644 "$beside" "$inst/$name"
lib=${MESHIM_PRELOAD/"$MESHIM_LIB"/"$inst/libmeshim.so"}
module_ask "$lib"
[ "$status" = 200 ] && [ "$from" = "$inst/$name" ] || fail "installed copy: status $status, module from '$from'"
ok "an installed library opens the module installed beside it"
out=$(MESHIM_LIBRARY=$inst/libmeshim.so meshim doctor python3) || fail "meshim doctor: $out"
grep -qx "tls: *the TLS module beside the library, opened as it is ($inst/$name)" <<< "$out" ||
    fail "meshim doctor does not say the module beside the library is opened: $out"
ok "meshim doctor says so"

# refused WHAT WHY: the module beside is not opened: said (WHY) at debug
# level, taken from the stats folder instead, and the request made.
refused() {
    module_ask "$lib" "${3:-$TMP}"
    [ "$status" = 200 ] || fail "$1: the request failed: $(tail -3 "$TMP/client.err")"
    [ "$from" = "$MESHIM_STATS_DIR/tls-module-$(module_id "$ROOT/$BUILD").so" ] ||
        fail "$1: the module came from '$from', not the stats folder"
    said "$2" || fail "$1: no debug line saying '$2': $(grep 'TLS module' "$TMP/client.err")"
    local doctor=""
    if [ -z "${3:-}" ]; then        # (the command finds the library by its full path)
        out=$(MESHIM_LIBRARY=$inst/libmeshim.so meshim doctor python3)
        grep -q "^tls: *the library's own copy of its TLS module, through the stats folder (.*$2" <<< "$out" ||
            fail "$1: meshim doctor does not say why: $out"
        doctor="; meshim doctor says so too"
    fi
    ok "$1: not opened ($2$doctor); the module from the stats folder"
}
chmod 0664 "$inst/$name"
refused "a module its group can write" "writable by its group or others"
chmod 0646 "$inst/$name"
refused "a module anyone can write" "writable by its group or others"
chmod 0644 "$inst/$name"
if [ "$(id -u)" = 0 ]; then
    chown 65534 "$inst/$name"
    refused "a module of another owner than the library's" "not owned by the library's owner"
    chown 0 "$inst/$name"
fi
head -c 4096 "$beside" > "$inst/short.so" && chmod 0644 "$inst/short.so" && mv "$inst/short.so" "$inst/$name"
refused "a module cut short" "not the module's size"
rm "$inst/$name" && ln -s "$beside" "$inst/$name"
refused "a symlink in the module's place" "Too many levels of symbolic links"
rm "$inst/$name" && install -m 0644 "$beside" "$inst/$name"
lib=${MESHIM_PRELOAD/"$MESHIM_LIB"/"./libmeshim.so"}
refused "a library named by a relative path" "not named by a full path" "$inst"
