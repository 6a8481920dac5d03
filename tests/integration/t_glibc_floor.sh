# One build for every glibc from 2.17 on (shim/libc/glibc_compat.c): the
# library, the TLS module it carries and the command reference no symbol
# version newer than GLIBC_2.17 (objdump -T), and the libraries the moved
# functions lived in before glibc 2.34 are listed (DT_NEEDED), so an old
# loader finds them; but libresolv, which every start would pay for and only
# DNS uses: its functions are weak references, found in libresolv opened on
# the first call there. The run-time proof is tests/deploy (a bullseye root,
# DNS discovery included).
. "$(dirname "$0")/lib.sh"
[ -n "${MESHIM_PRELOAD##*libasan*}" ] || exit 77     # sanitizer builds keep new versions
case $(uname -m) in x86_64|aarch64) ;; *) echo "skip: glibc floor is built for x86_64 and aarch64 only"; exit 0 ;; esac
command -v objdump > /dev/null || fail "needs objdump (binutils)"

newest() {   # newest GLIBC_ version FILE references
    objdump -T "$1" | grep -oE 'GLIBC_[0-9]+\.[0-9]+(\.[0-9]+)?' | sort -u -V | tail -n 1
}
for f in "$BUILD/libmeshim.so" "$BUILD/tls-module.so" "$BUILD/meshim"; do
    [ -f "$f" ] || fail "$f is not built"
    v=$(newest "$f")
    [ "$(printf '%s\nGLIBC_2.17\n' "$v" | sort -V | tail -n 1)" = GLIBC_2.17 ] ||
        fail "$f needs $v: $(objdump -T "$f" | grep -E 'GLIBC_2\.(1[89]|[2-9][0-9])' | awk '{print $NF, $(NF-1)}' | head)"
    for lib in libdl.so.2 libpthread.so.0; do
        readelf -d "$f" | grep -q "NEEDED.*\[$lib\]" || fail "$f does not name $lib"
    done
    ! readelf -d "$f" | grep -q "NEEDED.*\[libresolv.so.2\]" || fail "$f names libresolv.so.2"
    strong=$(readelf --dyn-syms -W "$f" | awk '$5 != "WEAK" && $7 == "UND" && $8 ~ /^(__res_nquery|__res_nmkquery|__dn_expand)@/ {print $8}')
    [ -z "$strong" ] || fail "$f needs at load what only libresolv has before 2.34: $strong"
    echo "  $f: newest $v"
done
ok "libmeshim.so, its TLS module and meshim need at most GLIBC_2.17, name libdl and libpthread, and find libresolv's functions when first called"
