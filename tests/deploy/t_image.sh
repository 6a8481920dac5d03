# The container image (Dockerfile) and the two ways a pod injects it
# (examples/kubernetes/), run by podman as root with the runc runtime.
# There is no registry here: the Dockerfile's base is a Debian 12 root made
# by debootstrap and imported (podman import), its build stage installs
# the build packages from the Debian mirror and builds the sources; the
# application image is the Debian 11 root (glibc 2.31, its own curl and
# python3, unmodified), run in place (--rootfs ROOT:O, an overlay over it).
# - The image builds from the Dockerfile, names this commit, and holds the
#   library, the command and the example config, nothing else.
# - Init container: the image's default command fills a world-writable
#   folder (an emptyDir) and closes it to others.
# - The application container preloads the library from it, reads its INI
#   from a ConfigMap-like folder and its identity from a Secret-like one,
#   both laid out as the kubelet does (a root tmpfs of mode 1777, ..data
#   swapped in): curl reaches a plain service by name and an mTLS one,
#   whose access log names the client's SPIFFE ID; the static command
#   runs there and reads the same config.
# - Image volume: the image mounted read-only at /mesh; python3 calls the
#   mTLS service through it, with the TLS module the image has beside the
#   library.
. "$(dirname "$0")/lib.sh"
command -v podman > /dev/null && command -v runc > /dev/null ||
    fail "needs podman and runc (make deps)"
# crun (podman's default) cannot start containers on this machine kind;
# runc can, once the limits asked for are ones an unprivileged runtime
# may set (podman's default nofile and nproc are above the hard limits).
PODMAN=(podman --runtime runc)
RUN=("${PODMAN[@]}" run --rm --network=host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
IMG=localhost/meshim-test:$$ BASE=localhost/meshim-test-debian12:$$
trap '"${PODMAN[@]}" rmi -f "$IMG" "$BASE" > /dev/null 2>&1; cleanup' EXIT
B=${BOOKWORM_ROOT:-$ROOT/$BUILD/bookworm}
[ -e "$B/.made" ] || fail "no Debian 12 root at $B (make $BUILD/bookworm/.made)"

# --- the image --------------------------------------------------------------
tar -C "$B" -c . | "${PODMAN[@]}" import -q - "$BASE" > /dev/null || fail "podman import of $B"
"${PODMAN[@]}" build --layers=false --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    --build-arg DEBIAN="$BASE" --build-arg COMMIT="$(cat "$BUILD/commit")" -t "$IMG" "$ROOT" \
    > "$TMP/build.out" 2>&1 || fail "podman build: $(tail -5 "$TMP/build.out")"
cid=$("${PODMAN[@]}" create "$IMG")
"${PODMAN[@]}" export "$cid" | tar -t | grep -v '/$' | sort > "$TMP/files"
"${PODMAN[@]}" rm "$cid" > /dev/null
# (its own build's module ID: the debug information names /src)
tr '\n' ' ' < "$TMP/files" | grep -qxE "libmeshim-tls-[0-9a-f]{16}\.so libmeshim\.so mesh\.ini meshim " ||
    fail "the image holds: $(tr '\n' ' ' < "$TMP/files")"
module=$(grep -E '^libmeshim-tls-' "$TMP/files")
out=$("${RUN[@]}" "$IMG" --version 2>&1)
[ "$out" = "meshim 0.1.0 (commit $(cat "$BUILD/commit"))" ] || fail "the image's meshim --version: $out"
ok "the Dockerfile builds on a local Debian 12 base; the image names this commit and holds the library, its TLS module, the command and the example config, nothing else"

# --- init container: meshim install into an emptyDir ------------------------
mkdir -m 0777 "$TMP/emptydir"
chmod 0777 "$TMP/emptydir"
out=$("${RUN[@]}" -v "$TMP/emptydir:/mesh" "$IMG" 2>&1) || fail "init container: $out"
[ "$out" = "meshim: installed /mesh/libmeshim.so and /mesh/meshim (preload the first: LD_PRELOAD=/mesh/libmeshim.so)" ] ||
    fail "init container said: $out"
for f in libmeshim.so "$module" meshim mesh.ini; do
    [ -f "$TMP/emptydir/$f" ] || fail "$f not installed: $(ls "$TMP/emptydir")"
done
[ "$(stat -c '%a %u' "$TMP/emptydir/$module")" = "644 0" ] ||
    fail "$module installed $(stat -c '%a %u' "$TMP/emptydir/$module"), not 644 0 (the library's owner's, only its to write)"
cmp -s "$ROOT/examples/mesh.ini" "$TMP/emptydir/mesh.ini" || fail "mesh.ini is not the example config"
[ "$(stat -c %a "$TMP/emptydir")" = 755 ] || fail "the folder is left $(stat -c %a "$TMP/emptydir")"
ok "init container: the image's command installs the files into the emptyDir and closes it to others"

# --- the application container ----------------------------------------------
C=$TMP/pki
make_certs "$C" > /dev/null || fail "cannot make the test certificates"
start_backends
# kubelet_volume DIR FILE=SOURCE...: DIR as the kubelet writes a Secret or
# ConfigMap volume: a root folder of mode 1777, the files in a snapshot
# folder, ..data pointing to it, each name a symlink through ..data.
kubelet_volume() {
    local dir=$1 snap=..2026_12_01_00_00_00.$$ kv
    shift
    mkdir -p "$dir/$snap"
    for kv in "$@"; do
        cp "${kv#*=}" "$dir/$snap/${kv%%=*}"
        ln -s "..data/${kv%%=*}" "$dir/${kv%%=*}"
    done
    ln -s "$snap" "$dir/..data"
    chmod 0755 "$dir/$snap"
    chmod 1777 "$dir"
}
cat > "$TMP/web.ini" <<INI
[meshim]
access_log = stderr
[tls]
dir = /var/run/secrets/meshim
$(backend_services)
INI
kubelet_volume "$TMP/configmap" web.ini="$TMP/web.ini"
kubelet_volume "$TMP/secret" tls.crt="$C/web.pem" tls.key="$C/web.key" ca.crt="$C/ca.pem"
chmod 0440 "$TMP/secret"/..2026*/tls.key
APP=(-v "$TMP/configmap:/etc/meshim:ro" -v "$TMP/secret:/var/run/secrets/meshim:ro"
     -e MESHIM_CONFIG=/etc/meshim/web.ini -e LD_PRELOAD=/mesh/libmeshim.so)

out=$("${RUN[@]}" -v "$TMP/emptydir:/mesh:ro" "${APP[@]}" --rootfs "$R:O" \
      sh -c "curl -sS http://web:$port/ && curl -sS http://secure:$tport/" 2> "$TMP/app.err") ||
    fail "curl in the application container: $(tail -3 "$TMP/app.err")"
[ "$out" = "hello from the backend
hello from the backend" ] || fail "curl printed: $out ($(tail -3 "$TMP/app.err"))"
grep -q '"service":"secure".*"result":"ok".*"peer_identity":"spiffe://test.mesh/ns/prod/sa/orders"' "$TMP/app.err" ||
    fail "no mTLS access-log line in the container: $(cat "$TMP/app.err")"
# The server logs a connection when it ends: up to 10 s for that line.
for _ in $(seq 1 100); do
    grep -q '"peer_identity":"spiffe://test.mesh/ns/prod/sa/web"' "$TMP/server-access.log" 2> /dev/null && break
    sleep 0.1
done
grep -q '"peer_identity":"spiffe://test.mesh/ns/prod/sa/web"' "$TMP/server-access.log" ||
    fail "the server's access log does not name the container's identity: $(cat "$TMP/server-access.log")"
ok "application container (glibc 2.31) preloads from the emptyDir: curl by name, plain and mTLS (identity from the Secret volume)"

out=$("${RUN[@]}" -v "$TMP/emptydir:/mesh:ro" "${APP[@]}" -e LD_PRELOAD= --rootfs "$R:O" \
      sh -c '/mesh/meshim --version && /mesh/meshim check' 2>&1) || fail "meshim in the container: $out"
grep -qx "meshim 0.1.0 (commit $(cat "$BUILD/commit"))" <<< "$out" || fail "meshim --version: $out"
grep -q "layout *kubernetes" <<< "$out" || fail "meshim check did not read the Secret's layout: $out"
grep -q "service secure" <<< "$out" || fail "meshim check: $out"
ok "the static meshim runs in the application container and reads its config and Secret"

# --- image volume -----------------------------------------------------------
out=$("${RUN[@]}" --mount "type=image,source=$IMG,destination=/mesh" "${APP[@]}" --rootfs "$R:O" \
      python3 -c "
import urllib.request, os
print(urllib.request.urlopen('http://secure:$tport/', timeout=10).read().decode().strip())
print(' '.join(sorted({l.split(None, 5)[5].strip() for l in open('/proc/self/maps') if 'tls' in l})))
try:
    open('/mesh/x', 'w')
except OSError as e:
    print('read-only' if e.errno == 30 else e)
" 2> "$TMP/vol.err") || fail "python3 with the image volume: $(tail -3 "$TMP/vol.err")"
# The module mapped is the image's (its name is that build's ID); maps
# names it by its path in the image's layer (overlayfs), not under /mesh.
[[ "$out" == "hello from the backend
"*"/$module
read-only" ]] || fail "python3 printed: $out ($(tail -3 "$TMP/vol.err"))"
grep -q '"service":"secure".*"result":"ok".*"peer_identity":"spiffe://test.mesh/ns/prod/sa/orders"' "$TMP/vol.err" ||
    fail "no mTLS access-log line with the image volume: $(cat "$TMP/vol.err")"
ok "image volume: the image mounted read-only at /mesh, python3 calls the mTLS service through it, its TLS module opened from /mesh"
