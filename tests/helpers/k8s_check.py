#!/usr/bin/env python3
"""k8s_check.py FILE...: the Kubernetes manifests of examples/kubernetes/,
read as YAML and checked for what the API server requires of each kind and
for what ties them together (there is no cluster here to apply them to):

- every object: apiVersion, kind, metadata.name, and a namespace for the
  namespaced kinds;
- Deployment: a selector its pod template's labels match, containers
  with a name and an image, unique names, every volumeMount naming a
  volume of the pod, every volume with exactly one source, and the
  ConfigMaps, Secrets (a cert-manager Certificate's secretName) and
  service accounts it uses defined in the files;
- the mesh wiring: LD_PRELOAD is <mount>/libmeshim.so where the mount is
  an emptyDir an init container fills with `install <mount>`, or an image
  volume; MESHIM_CONFIG is a key of the mounted ConfigMap;
- Service: ports with names, a selector that matches a Deployment;
  RoleBinding: its Role and service accounts defined.

Prints one line per problem and exits 1 if there is any; with --ini DIR,
writes each ConfigMap key ending in .ini to DIR for `meshim check`.
"""
import sys
import yaml

NAMESPACED = {"ServiceAccount", "ConfigMap", "Secret", "Service", "Deployment", "Role",
              "RoleBinding", "Certificate"}
API = {"Namespace": "v1", "ServiceAccount": "v1", "ConfigMap": "v1", "Secret": "v1",
       "Service": "v1", "Deployment": "apps/v1", "Role": "rbac.authorization.k8s.io/v1",
       "RoleBinding": "rbac.authorization.k8s.io/v1", "Certificate": "cert-manager.io/v1"}
SOURCES = {"emptyDir", "configMap", "secret", "csi", "image", "projected", "hostPath",
           "persistentVolumeClaim", "downwardAPI"}
problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def load(paths):
    objs = []
    for path in paths:
        with open(path) as f:
            for i, doc in enumerate(yaml.safe_load_all(f)):
                if doc is not None:
                    objs.append((f"{path}#{i}", doc))
    return objs


def check_object(where, o):
    kind = o.get("kind")
    if kind not in API:
        return problem(where, f"kind {kind!r} is not one this checker knows")
    if o.get("apiVersion") != API[kind]:
        problem(where, f"{kind} needs apiVersion {API[kind]}, has {o.get('apiVersion')!r}")
    meta = o.get("metadata") or {}
    if not meta.get("name"):
        problem(where, "no metadata.name")
    if kind in NAMESPACED and not meta.get("namespace"):
        problem(where, f"{kind} {meta.get('name')}: no metadata.namespace")


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", []) if "name" in e}


def fills(init, vname, mounts):
    """Does this init container run `... install PATH` with vname at PATH?"""
    path = next((p for p, n in mounts.get(init.get("name"), {}).items() if n == vname), None)
    return path is not None and (init.get("args") or init.get("command") or [])[-2:] == ["install", path]


def selects(selector, deployment):
    labels = ((deployment["spec"]["template"].get("metadata") or {}).get("labels")) or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_deployment(where, d, defined):
    name = d["metadata"]["name"]
    where = f"{where} Deployment {name}"
    spec = d.get("spec") or {}
    tmpl = spec.get("template") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    if not match or any(labels.get(k) != v for k, v in match.items()):
        problem(where, f"selector {match} does not match the template's labels {labels}")
    pod = tmpl.get("spec") or {}
    containers, inits = pod.get("containers") or [], pod.get("initContainers") or []
    if not containers:
        problem(where, "no containers")
    names = [c.get("name") for c in containers + inits]
    if None in names or len(set(names)) != len(names):
        problem(where, f"container names missing or repeated: {names}")
    volumes = {}
    for v in pod.get("volumes") or []:
        srcs = [k for k in v if k in SOURCES]
        if len(srcs) != 1:
            problem(where, f"volume {v.get('name')} has sources {srcs}, needs one")
            continue
        volumes[v.get("name")] = (srcs[0], v[srcs[0]] or {})
    sa = pod.get("serviceAccountName")
    if sa and ("ServiceAccount", sa) not in defined:
        problem(where, f"service account {sa} is not defined")
    for vname, (src, body) in volumes.items():
        if src == "configMap" and ("ConfigMap", body.get("name")) not in defined:
            problem(where, f"ConfigMap {body.get('name')} is not defined")
        if src == "secret" and ("Secret", body.get("secretName")) not in defined:
            problem(where, f"Secret {body.get('secretName')} is not defined (nor a Certificate's)")
        if src == "image" and not body.get("reference"):
            problem(where, f"image volume {vname} has no reference")
        if src == "csi" and not body.get("driver"):
            problem(where, f"csi volume {vname} has no driver")
    mounts = {}
    for c in containers + inits:
        if not c.get("image"):
            problem(where, f"container {c.get('name')} has no image")
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                problem(where, f"container {c.get('name')} mounts {m.get('name')}, not a volume of the pod")
            if not str(m.get("mountPath", "")).startswith("/"):
                problem(where, f"container {c.get('name')}: mountPath {m.get('mountPath')!r}")
            mounts.setdefault(c.get("name"), {})[m.get("mountPath")] = m.get("name")
    for c in containers:
        env = env_of(c)
        preload = env.get("LD_PRELOAD")
        if not preload:
            problem(where, f"container {c.get('name')} has no LD_PRELOAD")
            continue
        mdir, _, lib = preload.rpartition("/")
        vname = mounts.get(c.get("name"), {}).get(mdir)
        if lib != "libmeshim.so" or vname is None:
            problem(where, f"LD_PRELOAD={preload} is not libmeshim.so in a mounted volume")
            continue
        src, _ = volumes[vname]
        if src == "emptyDir":
            if not any(fills(i, vname, mounts) for i in inits):
                problem(where, f"no init container runs `install` into the emptyDir {vname}")
        elif src != "image":
            problem(where, f"LD_PRELOAD's volume {vname} is a {src}, neither an emptyDir nor an image")
        cfg = env.get("MESHIM_CONFIG")
        cdir, _, key = (cfg or "").rpartition("/")
        cvol = mounts.get(c.get("name"), {}).get(cdir)
        if not cfg or cvol is None or volumes[cvol][0] != "configMap":
            problem(where, f"MESHIM_CONFIG={cfg} is not a file of a mounted ConfigMap")
        elif key not in defined.get(("ConfigMap", volumes[cvol][1].get("name")), {}):
            problem(where, f"MESHIM_CONFIG={cfg}: the ConfigMap has no key {key}")


def main(argv):
    ini_dir = None
    if argv[:1] == ["--ini"]:
        ini_dir, argv = argv[1], argv[2:]
    objs = load(argv)
    defined = {}
    for where, o in objs:
        check_object(where, o)
        kind, name = o.get("kind"), (o.get("metadata") or {}).get("name")
        defined[(kind, name)] = o.get("data") or {}
        if kind == "Certificate":
            s = o.get("spec") or {}
            if not s.get("secretName") or not (s.get("issuerRef") or {}).get("name"):
                problem(where, f"Certificate {name}: needs secretName and issuerRef.name")
            defined[("Secret", s.get("secretName"))] = {}
    for where, o in objs:
        kind = o.get("kind")
        if kind == "Deployment":
            check_deployment(where, o, defined)
        elif kind == "Service":
            spec = o.get("spec") or {}
            for p in spec.get("ports") or []:
                if not p.get("name") or not p.get("port"):
                    problem(where, f"Service port {p}: needs a name (the SRV record's) and a port")
            sel = spec.get("selector") or {}
            if not any(o2.get("kind") == "Deployment" and selects(sel, o2) for _, o2 in objs):
                problem(where, f"Service selector {sel} matches no Deployment")
        elif kind == "RoleBinding":
            if ("Role", (o.get("roleRef") or {}).get("name")) not in defined:
                problem(where, "RoleBinding's Role is not defined")
            for s in o.get("subjects") or []:
                if s.get("kind") == "ServiceAccount" and ("ServiceAccount", s.get("name")) not in defined:
                    problem(where, f"RoleBinding subject {s.get('name')} is not defined")
        elif kind == "ConfigMap" and ini_dir:
            for key, text in (o.get("data") or {}).items():
                if key.endswith(".ini"):
                    with open(f"{ini_dir}/{key}", "w") as f:
                        f.write(text)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
