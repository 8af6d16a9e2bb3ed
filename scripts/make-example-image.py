#!/usr/bin/env python3
"""Writes fixtures/example-image: a small OCI image layout (tag `latest`) whose two
gzip layers are the golden layers app.tar.gz and edge-pax.tar.gz. Deterministic:
running it again gives the same bytes."""
import hashlib, json, os, shutil, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
golden = os.path.join(root, "fixtures", "golden")
out = os.path.join(root, "fixtures", "example-image")

def go_json(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()

def put(data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)

shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
layers, diff_ids = [], []
for name, tar in [("edge-pax.tar.gz", "edge-pax.tar"), ("app.tar.gz", "app.tar")]:
    data = open(os.path.join(golden, name), "rb").read()
    digest, size = put(data)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size})
    diff_ids.append("sha256:" + hashlib.sha256(open(os.path.join(golden, tar), "rb").read()).hexdigest())
config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
          "rootfs": {"type": "layers", "diff_ids": diff_ids}}
cdigest, csize = put(go_json(config))
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
            "layers": layers}
mdigest, msize = put(go_json(manifest))
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": msize,
                        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
open(os.path.join(out, "index.json"), "wb").write(go_json(index))
open(os.path.join(out, "oci-layout"), "wb").write(b'{"imageLayoutVersion":"1.0.0"}')
print(out, mdigest)
