# Builds an OCI image layout of 4 gzip layers exercising what a mount must
# merge (whiteouts, opaque directories, hardlinks, symlinks, devices, xattrs,
# owners and modes, big files spanning many spans), and writes expected.json:
# the merged tree as containerd would unpack it, computed here independently
# of soci (a plain dictionary of paths, layer after layer).
#
# usage: fixture.py build LAYOUT_DIR TAG EXPECTED_JSON
#        fixture.py check MOUNT_DIR EXPECTED_JSON   (prints each difference;
#        exit 1 if any: paths, types, modes, owners, mtimes, sizes, sha256 of
#        contents, symlink targets, device numbers, xattrs, shared inodes)
import gzip, hashlib, io, json, os, random, stat, subprocess, sys, tarfile

MTIME = 1600000000

def check(mnt, expected_path):
    exp = json.load(open(expected_path))["tree"]
    bad = []
    got = set()
    for root, dirs, files in os.walk(mnt):
        for n in dirs + files:
            got.add(os.path.relpath(os.path.join(root, n), mnt))
    for p in sorted(got - set(exp)):
        bad.append("unexpected path %s" % p)
    for p in sorted(set(exp) - got):
        bad.append("missing path %s" % p)
    kinds = {"dir": stat.S_ISDIR, "file": stat.S_ISREG, "symlink": stat.S_ISLNK,
             "fifo": stat.S_ISFIFO, "chr": stat.S_ISCHR, "blk": stat.S_ISBLK}
    groups = {}
    for p, e in sorted(exp.items()):
        if p not in got:
            continue
        m = os.path.join(mnt, p)
        st = os.lstat(m)
        if not kinds[e["type"]](st.st_mode):
            bad.append("%s: type %o, expected %s" % (p, st.st_mode, e["type"]))
            continue
        if "mode" in e and stat.S_IMODE(st.st_mode) != e["mode"]:
            bad.append("%s: mode %o, expected %o" % (p, stat.S_IMODE(st.st_mode), e["mode"]))
        if (st.st_uid, st.st_gid) != (e["uid"], e["gid"]):
            bad.append("%s: owner %d:%d" % (p, st.st_uid, st.st_gid))
        if int(st.st_mtime) != MTIME and e["type"] != "dir":
            bad.append("%s: mtime %s" % (p, st.st_mtime))
        if e["type"] == "file":
            with open(m, "rb") as f:
                h = hashlib.sha256(f.read()).hexdigest()
            if h != e["sha256"] or st.st_size != e["size"]:
                bad.append("%s: content differs" % p)
        if e["type"] == "symlink" and os.readlink(m) != e["target"]:
            bad.append("%s: target %s" % (p, os.readlink(m)))
        if "rdev" in e and [os.major(st.st_rdev), os.minor(st.st_rdev)] != e["rdev"]:
            bad.append("%s: rdev %d,%d" % (p, os.major(st.st_rdev), os.minor(st.st_rdev)))
        if e["type"] != "symlink":
            xa = {k: os.getxattr(m, k, follow_symlinks=False).decode() for k in os.listxattr(m, follow_symlinks=False)}
            if xa != e.get("xattrs", {}):
                bad.append("%s: xattrs %s" % (p, xa))
        if "link_group" in e:
            groups.setdefault(e["link_group"], set()).add((st.st_ino, st.st_nlink))
    for g, inos in groups.items():
        if len(inos) != 1 or list(inos)[0][1] < 2:
            bad.append("hardlinks of %s do not share one inode: %s" % (g, inos))
    for b in bad:
        print(b)
    print("checked %d paths, %d differences" % (len(exp), len(bad)))
    sys.exit(1 if bad else 0)

if sys.argv[1] == "check":
    check(sys.argv[2], sys.argv[3])
out, tag, expected_path = sys.argv[2], sys.argv[3], sys.argv[4]

def data(seed, n):
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n)) if n < 4096 else r.randbytes(n)

def text(seed, n):
    # compressible, so that gzip spans cover many uncompressed bytes
    r = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"\n", b"soci", b"mount"]
    b = bytearray()
    while len(b) < n:
        b += r.choice(words) + b" "
    return bytes(b[:n])

# Each layer: list of (kind, name, extra dict)
layers = [
    [
        ("dir", "etc", {}),
        ("file", "etc/hostname", {"data": b"base\n"}),
        ("file", "etc/passwd", {"data": b"root:x:0:0::/root:/bin/sh\n", "mode": 0o600}),
        ("dir", "usr", {}), ("dir", "usr/lib", {}),
        ("file", "usr/lib/big.bin", {"data": data(1, 3_000_000)}),
        ("file", "usr/lib/text.txt", {"data": text(2, 2_000_000)}),
        ("file", "usr/lib/gone.txt", {"data": b"whited out later\n"}),
        ("dir", "opq", {}),
        ("file", "opq/lower.txt", {"data": b"hidden by the opaque dir\n"}),
        ("dir", "opq/sub", {}),
        ("file", "opq/sub/deep.txt", {"data": b"also hidden\n"}),
        ("file", "owned", {"data": b"owned by 1000:2000\n", "uid": 1000, "gid": 2000, "mode": 0o640}),
        ("file", "setuid", {"data": b"#!/bin/sh\n", "mode": 0o4755}),
        ("symlink", "etc/link", {"target": "hostname"}),
        ("symlink", "abs-link", {"target": "/usr/lib/big.bin"}),
        ("file", "x.txt", {"data": b"has xattrs\n", "xattrs": {"user.soci": "yes", "user.empty": ""}}),
        ("fifo", "pipe", {}),
        ("chr", "null", {"major": 1, "minor": 3}),
        ("blk", "loop0", {"major": 7, "minor": 0}),
        ("file", "empty", {"data": b""}),
    ],
    [
        ("dir", "usr", {}), ("dir", "usr/lib", {}),
        ("file", "usr/lib/.wh.gone.txt", {"data": b""}),
        ("dir", "opq", {"mode": 0o750}),
        ("file", "opq/.wh..wh..opq", {"data": b""}),
        ("file", "opq/upper.txt", {"data": b"only this one\n"}),
        ("file", "etc/hostname", {"data": b"upper wins\n"}),
        ("file", "usr/lib/shared.so", {"data": data(3, 500_000), "mode": 0o755}),
        ("hardlink", "usr/lib/shared-link.so", {"target": "usr/lib/shared.so"}),
        ("dir", "deleted-dir", {}),
        ("file", "deleted-dir/a", {"data": b"a\n"}),
    ],
    # a small layer: with --min-layer-size 1MiB... all layers get zTOCs at
    # min 0; the last layer is uncompressed-size tiny but still indexed
    [
        ("file", ".wh.deleted-dir", {"data": b""}),
        ("file", "new-in-3.txt", {"data": text(4, 100_000)}),
        ("dir", "usr", {}), ("dir", "usr/lib", {}),
        ("file", "usr/lib/big2.bin", {"data": data(5, 1_500_000)}),
    ],
    # zstd (see below): no zTOC
    [
        ("file", "top.txt", {"data": b"top layer, no zTOC\n"}),
        ("dir", "etc", {}),
        ("file", "etc/passwd", {"data": b"root:x:0:0::/root:/bin/bash\n", "mode": 0o644}),
    ],
]

def tar_layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for kind, name, x in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = MTIME
            ti.uid, ti.gid = x.get("uid", 0), x.get("gid", 0)
            ti.uname = ti.gname = ""
            body = None
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, x.get("mode", 0o755)
            elif kind == "file":
                ti.type, ti.mode = tarfile.REGTYPE, x.get("mode", 0o644)
                body = x["data"]; ti.size = len(body)
            elif kind == "symlink":
                ti.type, ti.mode, ti.linkname = tarfile.SYMTYPE, 0o777, x["target"]
            elif kind == "hardlink":
                ti.type, ti.mode, ti.linkname = tarfile.LNKTYPE, 0o755, x["target"]
            elif kind == "fifo":
                ti.type, ti.mode = tarfile.FIFOTYPE, 0o644
            elif kind in ("chr", "blk"):
                ti.type = tarfile.CHRTYPE if kind == "chr" else tarfile.BLKTYPE
                ti.mode, ti.devmajor, ti.devminor = 0o666, x["major"], x["minor"]
            if "xattrs" in x:
                ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in x["xattrs"].items()}
            t.addfile(ti, io.BytesIO(body) if body is not None else None)
    return buf.getvalue()

# The merged view, applied layer by layer as containerd does.
tree = {}
contents = {}
def apply(entries, layer):
    for kind, name, x in entries:
        parent, base = os.path.split(name)
        if base == ".wh..wh..opq":
            for p in [p for p in tree if p.startswith(parent + "/") and tree[p]["layer"] < layer]:
                del tree[p]
            continue
        if base.startswith(".wh."):
            victim = os.path.join(parent, base[4:])
            for p in [p for p in tree if p == victim or p.startswith(victim + "/")]:
                del tree[p]
            continue
        e = {"layer": layer, "uid": x.get("uid", 0), "gid": x.get("gid", 0)}
        if kind == "dir":
            e.update(type="dir", mode=x.get("mode", 0o755))
        elif kind == "file":
            e.update(type="file", mode=x.get("mode", 0o644), sha256=hashlib.sha256(x["data"]).hexdigest(), size=len(x["data"]))
            contents[name] = x["data"]
        elif kind == "symlink":
            e.update(type="symlink", target=x["target"])
        elif kind == "hardlink":
            t = dict(tree[x["target"]]); t["layer"] = layer
            t["link_group"] = x["target"]; tree[x["target"]]["link_group"] = x["target"]
            tree[name] = t
            contents[name] = contents[x["target"]]
            continue
        elif kind == "fifo":
            e.update(type="fifo", mode=0o644)
        elif kind in ("chr", "blk"):
            e.update(type=kind, mode=0o666, rdev=[x["major"], x["minor"]])
        if "xattrs" in x:
            e["xattrs"] = x["xattrs"]
        tree[name] = e
for i, l in enumerate(layers):
    apply(l, i)

def blob(b):
    d = hashlib.sha256(b).hexdigest()
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(b)
    return "sha256:" + d, len(b)

descs, diff_ids = [], []
for i, l in enumerate(layers):
    raw = tar_layer(l)
    if i == len(layers) - 1:
        # The top layer is zstd: soci indexes no zstd layer, so the mount
        # fetches it whole and unpacks it itself.
        z = subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, stdout=subprocess.PIPE, check=True).stdout
        d, n = blob(z)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": d, "size": n})
    else:
        gz = gzip.compress(raw, compresslevel=6, mtime=0)
        d, n = blob(gz)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
cd, cn = blob(json.dumps(config).encode())
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
            "layers": descs}
md, mn = blob(json.dumps(manifest).encode())
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
              "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
# The regular files of the merged tree, for byte comparisons of ranges.
for p, e in tree.items():
    if e["type"] == "file":
        dst = os.path.join(os.path.dirname(expected_path), "unpacked", p)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "wb") as f:
            f.write(contents[p])
with open(expected_path, "w") as f:
    json.dump({"tree": tree, "layer_sizes": [d["size"] for d in descs]}, f, indent=1, sort_keys=True)
