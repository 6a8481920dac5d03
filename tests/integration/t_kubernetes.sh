# examples/kubernetes/: no cluster here, so the manifests are read as YAML
# and checked for the fields the API server requires and for the wiring
# between them (tests/helpers/k8s_check.py says what), and the INI files
# of the ConfigMap pass `meshim check` with an identity folder laid out as
# the kubelet lays out a Secret volume. A manifest broken on purpose must
# be refused, so that the checker is known to check.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"
python3 -c 'import yaml' 2> /dev/null || fail "needs python3-yaml (make deps)"
K=$ROOT/examples/kubernetes
CHECK=(python3 "$ROOT/tests/helpers/k8s_check.py")

mkdir -p "$TMP/ini"
out=$("${CHECK[@]}" --ini "$TMP/ini" "$K"/*.yaml) || fail "the manifests: $out"
n=$(cat "$K"/*.yaml | grep -c '^kind:')
ok "the manifests ($n objects in $(ls "$K"/*.yaml | wc -l) files) hold the required fields and refer to what they define"

# Broken on purpose: a volumeMount without its volume; an emptyDir that
# no init container fills.
sed '0,/name: mesh$/s//name: meshx/' "$K/web.yaml" > "$TMP/web-badmount.yaml"
out=$("${CHECK[@]}" "$K"/{namespace,meshim-config,certificates,orders}.yaml "$TMP/web-badmount.yaml") &&
    fail "a mount without a volume passed"
grep -q "mounts meshx, not a volume of the pod" <<< "$out" || fail "unexpected: $out"
python3 - "$K/web.yaml" "$TMP/web-noinit.yaml" <<'PY'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
del d["spec"]["template"]["spec"]["initContainers"]
yaml.safe_dump(d, open(sys.argv[2], "w"))
PY
out=$("${CHECK[@]}" "$K"/{namespace,meshim-config,certificates,orders}.yaml "$TMP/web-noinit.yaml") &&
    fail "an emptyDir nobody fills passed"
grep -q "no init container runs \`install\` into the emptyDir mesh" <<< "$out" || fail "unexpected: $out"
ok "a manifest with a dangling mount, or without the init container, is refused"

# The ConfigMap's INIs, with the identity where the Secret would be.
C=$TMP/pki
make_certs "$C" > /dev/null || fail "cannot make the test certificates"
snap=$TMP/secret/..2026_12_01_00_00_00.1
mkdir -p "$snap"
cp "$C/web.pem" "$snap/tls.crt"; cp "$C/web.key" "$snap/tls.key"; cp "$C/ca.pem" "$snap/ca.crt"
ln -s "$(basename "$snap")" "$TMP/secret/..data"
chmod 1777 "$TMP/secret"
for ini in "$TMP"/ini/*.ini; do
    out=$(MESHIM_TLS_DIR=$TMP/secret "$MESHIM_CMD" check -c "$ini" 2>&1) ||
        fail "meshim check $(basename "$ini"): $out"
    grep -q "layout *kubernetes" <<< "$out" || fail "$(basename "$ini"): $out"
done
grep -q "srv *_http._tcp.orders.shop.svc.cluster.local" <<< "$("$MESHIM_CMD" check -c "$TMP/ini/web.ini" 2>&1)" ||
    fail "web.ini does not discover orders through the headless Service's SRV name"
ok "the ConfigMap's INIs ($(cd "$TMP/ini" && ls | tr '\n' ' ')) pass meshim check with a Secret-layout identity"
