# Where no module file is beside the library (t_tls_module_beside), the TLS
# module (OpenSSL) is shared by a user's meshed processes through one
# file in the stats folder, instead of a 5 MB private copy in each: the
# server and every client map the same file, which is this user's, read-only
# and byte for byte the module; a file in its place that is not (another
# user's, or other bytes) is never loaded, and the process still works with a
# private copy. The process that makes the file removes what earlier builds
# left there (this user's, a day old), and nothing else.
. "$(dirname "$0")/lib.sh"
unset MESHIM_STATS_DIR     # its INI files name the stats folders it checks
# The library alone, as a user who copies only it has it: the module file
# the build puts beside it would be opened first (t_tls_module_beside).
mkdir "$TMP/lone" && cp "$MESHIM_LIB" "$TMP/lone/" || fail "cannot copy the library"
MESHIM_PRELOAD=${MESHIM_PRELOAD/"$MESHIM_LIB"/"$TMP/lone/libmeshim.so"}
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
stats=$TMP/stats
port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
sed -i "s|^\[meshim\]|[meshim]\nstats_dir = $stats|" "$TMP/server.ini"
tls_ini "$TMP/client.ini" web "[service:orders]" "endpoints = 127.0.0.2:$port" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders"
sed -i "s|^\[meshim\]|[meshim]\nstats_dir = $stats|" "$TMP/client.ini"

# What earlier builds left: this user's module files and a temporary one, a
# day old (removed); this user's of an hour ago (a build in use: kept);
# another user's (kept).
mkdir -m 0755 "$stats"
for f in tls-module-0ld.so tls-module-recent.so .tls-module.aB3dE9 tls-module-theirs.so; do
    head -c 4096 /dev/zero > "$stats/$f"
    chmod 0400 "$stats/$f"
done
touch -d '2 days ago' "$stats/tls-module-0ld.so" "$stats/.tls-module.aB3dE9" "$stats/tls-module-theirs.so"
touch -d '1 hour ago' "$stats/tls-module-recent.so"
[ "$(id -u)" = 0 ] && chown nobody "$stats/tls-module-theirs.so"

MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -m http.server --bind 127.0.0.2 --directory "$TMP" "$port" > "$TMP/server.log" 2>&1 &
server=$!
PIDS+=($server)
wait_port 127.0.0.2 "$port"

# ask: one client run (module_ask: its status and module file in status, from).
ask() { module_ask "$MESHIM_PRELOAD"; }

ask
[ "$status" = 200 ] || fail "mTLS request failed: $(tail -3 "$TMP/client.err")"
module=$(ls "$stats"/tls-module-*.so 2>/dev/null | grep -vE '/tls-module-(recent|theirs)\.so$')
[ -n "$module" ] || fail "no module file in the stats folder: $(ls -la "$stats")"
[ "$from" = "$module" ] || fail "the client's module came from '$from', not $module"
grep -q "$module" "/proc/$server/maps" || fail "the server does not map $module: $(grep -E 'tls|memfd' /proc/$server/maps)"
grep -q "memfd:meshim-tls" "/proc/$server/maps" && fail "the server also holds a private copy"
read -r mode owner links < <(stat -c '%a %u %h' "$module")
[ "$mode" = 400 ] && [ "$owner" = "$(id -u)" ] && [ "$links" = 1 ] \
    || fail "module file is mode $mode, owner $owner, $links links (want 400, $(id -u), 1)"
ok "server and client map one module file ($(basename "$module"), mode 400, this user's), no private copy"
[ -e "$stats/tls-module-0ld.so" ] || [ -e "$stats/.tls-module.aB3dE9" ] &&
    fail "an earlier build's module files were left: $(ls -a "$stats")"
[ -e "$stats/tls-module-recent.so" ] || fail "a module file of an hour ago was removed"
if [ "$(id -u)" = 0 ]; then
    [ -e "$stats/tls-module-theirs.so" ] || fail "another user's module file was removed"
fi
ok "the files earlier builds left (a day old, this user's) were removed; an hour-old one and another user's kept"
rm -f "$stats/tls-module-recent.so" "$stats/tls-module-theirs.so"

# A second client, and a third: the same file, not a new one.
for _ in 1 2; do ask; [ "$from" = "$module" ] || fail "a later client used $from"; done
[ "$(ls "$stats" | grep -c 'tls-module')" = 1 ] || fail "more than one module file: $(ls "$stats")"
ok "later clients reuse it"

# A second link to the file, as perf's build-id cache makes in ~/.debug
# for every file a profiled process maps: the next client puts a new file
# under the name and maps it (before, it and every later process made a
# private copy); the linked one is left to its other name.
ln "$module" "$TMP/perf-link.so"
old_inode=$(stat -c %i "$module")
ask
[ "$status" = 200 ] || fail "with a linked module file the request failed: $(tail -3 "$TMP/client.err")"
[ "$from" = "$module" ] || fail "with a second link the module came from '$from', not $module"
read -r links inode < <(stat -c '%h %i' "$module")
[ "$links" = 1 ] && [ "$inode" != "$old_inode" ] || fail "the name still holds the linked file ($links links, inode $inode)"
[ "$(stat -c '%h %i' "$TMP/perf-link.so")" = "1 $old_inode" ] || fail "the other link was touched"
for _ in 1 2; do ask; [ "$from" = "$module" ] || fail "a later client used $from"; done
ok "a second link (perf's build-id cache): a new file under the name, shared again; the linked one left"

# Other bytes under its name, this user's and read-only: not loaded; the
# client works from a private copy and the file is left as it was.
cp "$module" "$TMP/real-module.so"
# A loadable module one byte off (its last byte, in the section headers
# dlopen does not read): only a comparison with the image tells.
rm -f "$module"
python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-1] ^= 0xff; open(sys.argv[2], "wb").write(b)' \
    "$TMP/real-module.so" "$module"
chmod 400 "$module"
before=$(sha256sum < "$module")
ask
[ "$status" = 200 ] || fail "with a wrong module file the request failed: $(tail -3 "$TMP/client.err")"
[ "$from" = "/memfd:meshim-tls" ] || fail "a wrong module file was loaded (from '$from')"
[ "$(sha256sum < "$module")" = "$before" ] || fail "the wrong file was changed"
ok "a module file with other bytes is not loaded: a private copy, the request made"

# Another user's file under its name (a shared, sticky stats folder): not loaded.
sticky=$TMP/sticky
mkdir -p "$sticky" && chmod 1777 "$sticky"
cp "$TMP/real-module.so" "$sticky/$(basename "$module")"
chown 65534 "$sticky/$(basename "$module")"
chmod 400 "$sticky/$(basename "$module")"
sed -i "s|^stats_dir = .*|stats_dir = $sticky|" "$TMP/client.ini"
ask
[ "$status" = 200 ] || fail "with another user's module file the request failed: $(tail -3 "$TMP/client.err")"
[ "$from" = "/memfd:meshim-tls" ] || fail "another user's module file was loaded (from '$from')"
ok "another user's module file is not loaded"

# A stats folder on a noexec mount (/tmp often is): no module file is
# written there and the process runs from a private copy, mapping nothing
# of a half-loaded file.
if [ "$(id -u)" = 0 ]; then
    nx=$TMP/noexec
    mkdir -p "$nx"
    mount -t tmpfs -o noexec,size=16m tmpfs "$nx" || fail "cannot mount a tmpfs for the noexec case"
    trap 'umount "$nx" 2>/dev/null; cleanup' EXIT
    sed -i "s|^stats_dir = .*|stats_dir = $nx|" "$TMP/client.ini"
    ask
    [ "$status" = 200 ] || fail "with a noexec stats folder the request failed: $(tail -3 "$TMP/client.err")"
    [ "$from" = "/memfd:meshim-tls" ] || fail "with a noexec stats folder the module came from '$from'"
    ls "$nx" | grep -q tls-module && fail "a module file was written to a noexec folder: $(ls "$nx")"
    umount "$nx" || fail "cannot unmount $nx"
    ok "a noexec stats folder: a private copy, no module file written there"
fi
