#!/usr/bin/env python3
"""Builds the startup benchmark's realistic images (OCI layouts) and their traces.

    sudo scripts/bench-fixtures.py [--data target/bench-data] [--traces] [--big]

Needs root (debootstrap, chroot), debootstrap and strace (apt-get install -y
debootstrap strace), the machine's Debian mirror (apt sources) and PyPI (pip).
Everything is cached under DATA (default target/bench-data, gitignored): a step whose
output exists is skipped, so a second run is instant and needs no network.

Images (OCI layouts under DATA/images/NAME, tag latest), layers are gzip -n tars
with sorted names, fixed mtimes and numeric root owners:
  debian   L1 debootstrap --variant=minbase bookworm (deb.debian.org, as apt is set up)
  python   L1 + L2: python3 (apt in the chroot) + numpy, pandas, scipy (pip --target
           /usr/local/lib/python3.11/dist-packages, byte-compiled unchecked-hash)
  app      python + L3: /app (a small script and a CSV)
  bigunused app + L4: pyarrow (a large package the workload never imports) -- the
           "most bytes unused at start" image. torch is behind --big (GBs of wheels).

Real-run image (--real-python; no root, no Debian mirror: PyPI only, run on demand
by `cargo bench --bench startup -- --real-run`):
  pyreal   L1 the host's /usr/bin/python3.11, the shared libraries it and the wheels'
           extensions need (ldd), /usr/lib/python3.11; L2 numpy 1.26.4 + pandas 2.2.2
           (pip --target /usr/local/lib/python3.11/dist-packages, byte-compiled by the
           host's python). Cmd: python3 -c "import numpy, pandas; print('ready')".
           Its trace is the one `soci run --record` writes during the bench.

Traces (--traces; committed under fixtures/traces/): the workload is run in a chroot
of the unpacked image under `strace -f -y`; the JSON lists, in first-open order, the
regular files it opened (symlinks resolved inside the image) and the byte ranges it
read (read/pread64 exact; mmap'd file ranges, an upper bound of what page faults touch).
"""
import argparse, hashlib, json, os, re, shutil, stat, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MTIME = 1700000000
MIRROR = "http://deb.debian.org/debian"
PYVER = "3.11"
SITE = f"usr/local/lib/python{PYVER}/dist-packages"

# Python workloads also run once more (without strace) with PAGEMAP_DUMP appended:
# at "ready" the process lists the pages of its file mappings present in its page
# table (what it faulted in, plus the kernel's fault-around neighbours).
PY_CODE = {
    "python": "import numpy, pandas; print('ready')",
    "app": "import runpy; runpy.run_path('/app/main.py', run_name='__main__')",
    "bigunused": "import numpy; print('ready')",
}

PAGEMAP_DUMP = """
import json, struct
res = {}
with open('/proc/self/pagemap', 'rb') as pm:
    for line in open('/proc/self/maps'):
        parts = line.split()
        if len(parts) < 6 or not parts[5].startswith('/'):
            continue
        a, b = [int(x, 16) for x in parts[0].split('-')]
        off, path = int(parts[2], 16), parts[5]
        n = (b - a) // 4096
        pm.seek(a // 4096 * 8)
        data = pm.read(n * 8)
        for i in range(n):
            if struct.unpack_from('<Q', data, i * 8)[0] >> 63 & 1:
                res.setdefault(path, []).append(off + i * 4096)
json.dump(res, open('/tmp/faulted.json', 'w'))
"""

WORKLOADS = {
    # image -> (trace name, command run in the chroot)
    "python": ("python-numpy-pandas", ["python3", "-c", "import numpy, pandas; print('ready')"]),
    "app": ("app-main", ["python3", "/app/main.py"]),
    "bigunused": ("bigunused-numpy", ["python3", "-c", "import numpy; print('ready')"]),
    "debian": ("debian-sh", ["/bin/sh", "-c", "ls /etc >/dev/null; echo ready"]),
}

APP_MAIN = '''import numpy as np
import pandas as pd
df = pd.read_csv("/app/data.csv")
print("ready", len(df), float(np.mean(df["value"])))
'''


def sh(*cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, **kw)


def fix_mtimes(root):
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            os.utime(os.path.join(dirpath, n), (MTIME, MTIME), follow_symlinks=False)
    os.utime(root, (MTIME, MTIME))


def snapshot(root):
    """path -> (kind, mode, uid, gid, size, content hash / link target)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256(open(p, "rb").read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                h = os.readlink(p)
            else:
                h = st.st_rdev
            out[rel] = (stat.S_IFMT(st.st_mode), st.st_mode, st.st_uid, st.st_gid, st.st_size, h)
    return out


def diff_paths(lower, upper_root):
    """Entries of upper_root that are new or changed against snapshot `lower`."""
    up = snapshot(upper_root)
    changed = sorted(p for p, v in up.items() if lower.get(p) != v)
    removed = sorted(p for p in lower if p not in up)
    if removed:
        print(f"note: {len(removed)} paths removed (no whiteouts written): {removed[:5]}", file=sys.stderr)
    # tar needs parent directories before their children for a clean layer
    need = set(changed)
    for p in changed:
        d = os.path.dirname(p)
        while d and d not in need:
            need.add(d)
            d = os.path.dirname(d)
    return sorted(need)


def make_layer(root, out_gz, paths=None):
    """A deterministic gzip tar of root (or of `paths` in it, without recursion)."""
    tmp = out_gz + ".tmp"
    args = ["tar", "-C", root, "--sort=name", f"--mtime=@{MTIME}", "--owner=0", "--group=0",
            "--numeric-owner", "--format=gnu", "-cf", "-"]
    if paths is None:
        args += ["--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*", "."]
        stdin = None
    else:
        lst = out_gz + ".list"
        with open(lst, "w") as f:
            f.write("\n".join(paths) + "\n")
        args += ["--no-recursion", "-T", lst]
    with open(tmp, "wb") as f:
        tar = subprocess.Popen(args, stdout=subprocess.PIPE)
        gz = subprocess.Popen(["gzip", "-n", "-6"], stdin=tar.stdout, stdout=f)
        tar.stdout.close()
        if gz.wait() or tar.wait():
            raise SystemExit(f"tar/gzip failed for {out_gz}")
    os.rename(tmp, out_gz)


def go_json(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


def write_layout(out, layers, cmd):
    """An OCI layout at `out` whose layers are the gzip files `layers`."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "blobs", "sha256"))

    def put(data=None, path=None):
        if path:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            d, size = h.hexdigest(), os.path.getsize(path)
            dst = os.path.join(out, "blobs", "sha256", d)
            if not os.path.exists(dst):
                os.link(path, dst)
        else:
            d, size = hashlib.sha256(data).hexdigest(), len(data)
            open(os.path.join(out, "blobs", "sha256", d), "wb").write(data)
        return "sha256:" + d, size

    descs, diff_ids = [], []
    for gz in layers:
        d, size = put(path=gz)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": size})
        h = hashlib.sha256()
        p = subprocess.Popen(["gzip", "-dc", gz], stdout=subprocess.PIPE)
        for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
            h.update(chunk)
        p.wait()
        diff_ids.append("sha256:" + h.hexdigest())
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cd, cs = put(go_json(config))
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                "layers": descs}
    md, ms = put(go_json(manifest))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
                            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    open(os.path.join(out, "index.json"), "wb").write(go_json(index))
    open(os.path.join(out, "oci-layout"), "wb").write(b'{"imageLayoutVersion":"1.0.0"}')
    print(f"{out}: {md}", file=sys.stderr)


def chroot_run(root, cmd, env=None):
    sh("mount", "-t", "proc", "proc", os.path.join(root, "proc"))
    try:
        sh("chroot", root, *cmd, env=env or {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"})
    finally:
        sh("umount", os.path.join(root, "proc"))


def build(data, big):
    rootfs = os.path.join(data, "rootfs")
    layers = os.path.join(data, "layers")
    os.makedirs(rootfs, exist_ok=True)
    os.makedirs(layers, exist_ok=True)
    base = os.path.join(rootfs, "base")
    if not os.path.isdir(base):
        sh("debootstrap", "--variant=minbase", "bookworm", base + ".tmp", MIRROR)
        os.rename(base + ".tmp", base)
    # as the official slim images: no package lists or downloaded .debs
    sh("sh", "-c", f"rm -rf {base}/var/lib/apt/lists/* {base}/var/cache/apt/archives/*.deb {base}/var/cache/apt/*.bin")
    l1 = os.path.join(layers, "l1-debian.tar.gz")
    if not os.path.exists(l1):
        fix_mtimes(base)
        make_layer(base, l1)

    py = os.path.join(rootfs, "python")
    if not os.path.isdir(py):
        tmp = py + ".tmp"
        sh("rm", "-rf", tmp)
        sh("cp", "-a", base, tmp)
        chroot_run(tmp, ["apt-get", "update", "-q"])
        chroot_run(tmp, ["apt-get", "install", "-y", "-q", "--no-install-recommends", "python3"])
        chroot_run(tmp, ["apt-get", "clean"])
        sh("sh", "-c", f"rm -rf {tmp}/var/lib/apt/lists/* {tmp}/var/cache/apt/*.bin {tmp}/var/log/apt {tmp}/var/log/dpkg.log {tmp}/var/cache/ldconfig/aux-cache")
        os.makedirs(f"{tmp}/var/lib/apt/lists/partial", exist_ok=True)
        sh(sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--no-cache-dir", "--only-binary=:all:",
           "--python-version", PYVER, "--platform", "manylinux2014_x86_64", "--implementation", "cp",
           "--target", os.path.join(tmp, SITE), "numpy==1.26.4", "pandas==2.2.2", "scipy==1.13.1")
        sh("rm", "-rf", os.path.join(tmp, SITE, "bin"))
        fix_mtimes(tmp)
        chroot_run(tmp, ["python3", "-m", "compileall", "-q", "-j", "2", "--invalidation-mode", "unchecked-hash", "/" + SITE])
        fix_mtimes(tmp)
        os.rename(tmp, py)
    l2 = os.path.join(layers, "l2-python.tar.gz")
    if not os.path.exists(l2):
        make_layer(py, l2, diff_paths(snapshot(base), py))

    l3 = os.path.join(layers, "l3-app.tar.gz")
    app = os.path.join(rootfs, "app-layer")
    if not os.path.exists(l3):
        shutil.rmtree(app, ignore_errors=True)
        os.makedirs(os.path.join(app, "app"))
        open(os.path.join(app, "app", "main.py"), "w").write(APP_MAIN)
        with open(os.path.join(app, "app", "data.csv"), "w") as f:
            f.write("id,name,value\n")
            for i in range(20000):
                f.write(f"{i},item{i % 97},{(i * 7919) % 1000 / 10}\n")
        fix_mtimes(app)
        make_layer(app, l3, ["app", "app/data.csv", "app/main.py"])

    l4 = os.path.join(layers, "l4-pyarrow.tar.gz")
    big_layer = os.path.join(rootfs, "bigunused-layer")
    if not os.path.exists(l4):
        shutil.rmtree(big_layer, ignore_errors=True)
        target = os.path.join(big_layer, SITE.replace("dist-packages", "big-packages"))
        pkgs = ["torch==2.3.1"] if big else ["pyarrow==16.1.0"]
        extra = ["--index-url", "https://download.pytorch.org/whl/cpu"] if big else []
        sh(sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--no-cache-dir", "--no-deps", "--only-binary=:all:",
           "--python-version", PYVER, "--platform", "manylinux2014_x86_64", "--implementation", "cp",
           "--target", target, *extra, *pkgs)
        fix_mtimes(big_layer)
        paths = sorted(os.path.relpath(os.path.join(d, n), big_layer)
                       for d, ds, fs in os.walk(big_layer) for n in ds + fs)
        make_layer(big_layer, l4, paths)

    images = os.path.join(data, "images")
    os.makedirs(images, exist_ok=True)
    plan = {"debian": [l1], "python": [l1, l2], "app": [l1, l2, l3], "bigunused": [l1, l2, l3, l4]}
    for name, ls in plan.items():
        out = os.path.join(images, name)
        if not os.path.exists(os.path.join(out, "index.json")):
            write_layout(out, ls, WORKLOADS[name][1])
    return plan


REAL_PY_CMD = ["python3", "-c", "import numpy, pandas; print('ready')"]


def ldd_deps(paths):
    """The host files the ELF objects `paths` load (ldd), symlinks kept as they are."""
    deps = set()
    for p in paths:
        out = subprocess.run(["ldd", p], capture_output=True, text=True).stdout
        for line in out.splitlines():
            m = re.search(r"(/\S+) \(0x", line)
            if m:
                deps.add(m.group(1))
    return deps


def copy_host(path, root):
    """Copies host `path` to root/path: a symlink as a symlink plus its target."""
    while True:
        dst = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.lexists(dst):
            return
        if os.path.islink(path):
            target = os.readlink(path)
            os.symlink(target, dst)
            path = os.path.normpath(os.path.join(os.path.dirname(path), target))
            continue
        if os.path.isdir(path):
            shutil.copytree(path, dst, symlinks=True, ignore=shutil.ignore_patterns("test", "__pycache__"))
        else:
            shutil.copy2(path, dst)
        return


def build_real_python(data):
    """The pyreal image (see the module doc), cached under DATA."""
    out = os.path.join(data, "images", "pyreal")
    if os.path.exists(os.path.join(out, "index.json")):
        return out
    work = os.path.join(data, "rootfs", "pyreal")
    base, site_root = os.path.join(work, "base"), os.path.join(work, "site")
    layers = os.path.join(data, "layers")
    os.makedirs(layers, exist_ok=True)
    l1, l2 = os.path.join(layers, "pyreal-l1.tar.gz"), os.path.join(layers, "pyreal-l2.tar.gz")
    host_py = "/usr/bin/python3." + PYVER.split(".")[1]
    if not os.path.isdir(site_root):
        tmp = site_root + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        sh(sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--no-cache-dir", "--only-binary=:all:",
           "--python-version", PYVER, "--platform", "manylinux2014_x86_64", "--implementation", "cp",
           "--target", os.path.join(tmp, SITE), "numpy==1.26.4", "pandas==2.2.2")
        sh("rm", "-rf", os.path.join(tmp, SITE, "bin"))
        sh(host_py, "-m", "compileall", "-q", "-j", "2", "--invalidation-mode", "unchecked-hash", "-d", "/" + SITE,
           os.path.join(tmp, SITE))
        os.rename(tmp, site_root)
    if not os.path.isdir(base):
        tmp = base + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        sos = [os.path.join(d, n) for top in [os.path.join(site_root, SITE), f"/usr/lib/python{PYVER}/lib-dynload"]
               for d, _, fs in os.walk(top) for n in fs if ".so" in n]
        for p in sorted({host_py, "/usr/bin/python3", f"/usr/lib/python{PYVER}"} | ldd_deps([host_py] + sos)):
            if not p.startswith(site_root):
                copy_host(p, tmp)
        sh(host_py, "-m", "compileall", "-q", "-j", "2", "--invalidation-mode", "unchecked-hash",
           "-d", f"/usr/lib/python{PYVER}", os.path.join(tmp, f"usr/lib/python{PYVER}"))
        os.makedirs(os.path.join(tmp, "etc"), exist_ok=True)
        open(os.path.join(tmp, "etc", "passwd"), "w").write("root:x:0:0:root:/root:/bin/sh\n")
        open(os.path.join(tmp, "etc", "group"), "w").write("root:x:0:\n")
        for d in ["tmp", "root", "proc", "sys", "dev"]:
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        os.chmod(os.path.join(tmp, "tmp"), 0o1777)
        fix_mtimes(tmp)
        os.rename(tmp, base)
    if not os.path.exists(l1):
        make_layer(base, l1)
    if not os.path.exists(l2):
        fix_mtimes(site_root)
        paths = sorted(os.path.relpath(os.path.join(d, n), site_root)
                       for d, ds, fs in os.walk(site_root) for n in ds + fs)
        make_layer(site_root, l2, paths)
    write_layout(out, [l1, l2], REAL_PY_CMD)
    return out


def unpack(data, name, layers):
    """The merged rootfs of image `name` (layers applied in order)."""
    root = os.path.join(data, "unpacked", name)
    if not os.path.isdir(root):
        tmp = root + ".tmp"
        sh("rm", "-rf", tmp)
        os.makedirs(tmp)
        for gz in layers:
            sh("tar", "-C", tmp, "--numeric-owner", "-xzf", gz)
        os.rename(tmp, root)
    return root


SYSCALL = re.compile(r'^(?:\[pid\s+\d+\]\s+)?(\d+)?\s*(\w+)\((.*)\)\s+=\s+(-?\d+|0x[0-9a-f]+)')


def resolve(root, path):
    """`path` (absolute, inside the image) with its symlinks resolved in the image."""
    parts = [p for p in path.split("/") if p]
    cur, hops = [], 0
    while parts:
        p = parts.pop(0)
        if p == ".":
            continue
        if p == "..":
            if cur:
                cur.pop()
            continue
        full = os.path.join(root, *cur, p)
        if os.path.islink(full):
            hops += 1
            if hops > 40:
                return None
            t = os.readlink(full)
            if t.startswith("/"):
                cur = []
            parts = [x for x in t.split("/") if x] + parts
            continue
        cur.append(p)
    return "/".join(cur)


def capture_trace(data, name, layers, out_dir):
    trace_name, cmd = WORKLOADS[name]
    root = unpack(data, name, layers)
    log = os.path.join(data, f"strace-{name}.log")
    sh("mount", "-t", "proc", "proc", os.path.join(root, "proc"))
    try:
        strace_cmd = ["strace", "-f", "-y", "-s", "0", "-o", log,
                      "-e", "trace=%file,read,pread64,mmap,lseek,close",
                      "chroot", root, *cmd]
        sh(*strace_cmd, env={"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": "/root", "LANG": "C.UTF-8",
                             "PYTHONDONTWRITEBYTECODE": "1"})
    finally:
        sh("umount", os.path.join(root, "proc"))
    faulted = None
    if name in PY_CODE:
        fpath = os.path.join(root, "tmp", "faulted.json")
        if os.path.exists(fpath):
            os.unlink(fpath)
        sh("mount", "-t", "proc", "proc", os.path.join(root, "proc"))
        try:
            sh("/usr/sbin/chroot", root, "python3", "-c", PY_CODE[name] + "\n" + PAGEMAP_DUMP,
               env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"})
        finally:
            sh("umount", os.path.join(root, "proc"))
        faulted = {}
        for path, pages in json.load(open(fpath)).items():
            rp = resolve(root, path)
            if rp:
                faulted.setdefault(rp, []).extend([p, 4096] for p in pages)
        os.unlink(fpath)
    files, ranges, seen = [], {}, set()
    mapped = {}
    fdpath = re.compile(r'^(-?\d+)<([^>]*)>')
    started = False  # only what happens after chroot() (before it: the host's chroot binary)
    for line in open(log, errors="replace"):
        m = SYSCALL.match(line)
        if not m:
            continue
        call, args, ret = m.group(2), m.group(3), m.group(4)
        if ret.startswith("-"):
            continue
        if call == "chroot":
            started = True
            continue
        if not started:
            continue
        # strace -y prints fd paths as the host sees them
        line_args = args.replace(root.rstrip("/") + "/", "/")
        args = line_args
        path = None
        if call in ("open", "openat", "execve"):
            q = re.search(r'"([^"]*)"', args)
            if not q:
                continue
            rp = resolve(root, q.group(1) if q.group(1).startswith("/") else "/" + q.group(1))
            if rp and os.path.isfile(os.path.join(root, rp)) and not os.path.islink(os.path.join(root, rp)) and rp not in seen:
                seen.add(rp)
                files.append(rp)
            continue
        if call in ("read", "pread64"):
            fm = fdpath.match(args)
            if not fm:
                continue
            path = fm.group(2)
            n = int(ret)
            if call == "pread64":
                off = int(args.rsplit(",", 1)[1])
            else:
                off = None  # sequential: offset tracked below
            key = resolve(root, path) if path.startswith("/") else None
            if not key or key not in seen:
                continue
            r = ranges.setdefault(key, {"pos": 0, "r": []})
            if off is None:
                off = r["pos"]
                r["pos"] = off + n
            if n:
                r["r"].append([off, n])
        elif call == "lseek":
            fm = fdpath.match(args)
            if fm:
                key = resolve(root, fm.group(2)) if fm.group(2).startswith("/") else None
                if key in seen:
                    ranges.setdefault(key, {"pos": 0, "r": []})["pos"] = int(ret)
        elif call == "close":
            fm = fdpath.match(args)
            if fm:
                key = resolve(root, fm.group(2)) if fm.group(2).startswith("/") else None
                if key in ranges:
                    ranges[key]["pos"] = 0
        elif call == "mmap":
            a = [x.strip() for x in args.split(",")]
            if len(a) >= 6:
                fm = fdpath.match(a[4])
                if fm and fm.group(2).startswith("/"):
                    key = resolve(root, fm.group(2))
                    if key in seen:
                        off = int(a[5], 16) if a[5].startswith("0x") else int(a[5])
                        mapped.setdefault(key, []).append([off, int(a[1])])

    def merge(rs, size):
        rs = sorted([o, min(o + n, size)] for o, n in rs if o < size)
        out = []
        for s, e in rs:
            if out and s <= out[-1][1]:
                out[-1][1] = max(out[-1][1], e)
            else:
                out.append([s, e])
        return out

    entries = []
    for f in files:
        size = os.path.getsize(os.path.join(root, f))
        reads = ranges.get(f, {"r": []})["r"]
        maps = merge(mapped.get(f, []), size)
        # pages present at "ready" when the file is still mapped then; else what was mapped
        touched = faulted[f] if faulted is not None and f in faulted else mapped.get(f, [])
        rs = merge(reads + touched, size)
        e = {"path": f, "size": size, "ranges": [[s, e - s] for s, e in rs]}
        if maps:
            e["mapped_bytes"] = sum(e2 - s2 for s2, e2 in maps)
        entries.append(e)
    doc = {
        "image": name,
        "command": cmd,
        "regenerate": f"sudo scripts/bench-fixtures.py --traces  # strace -f -y -e trace=%file,read,pread64,mmap,lseek,close chroot ROOT {' '.join(cmd)}",
        "note": "files in first-open order, symlinks resolved inside the image; ranges = [offset, length] merged from read/pread64 (exact) and, for mapped files, the pages present in the process's page table at ready (python workloads; faulted pages + kernel fault-around) or else the whole mmap'd ranges (upper bound); mapped_bytes = bytes mmap'd",
        "files": entries,
    }
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, trace_name + ".json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=0)
        f.write("\n")
    total = sum(e["size"] for e in entries)
    read = sum(n for e in entries for _, n in e["ranges"])
    mapped_total = sum(e.get("mapped_bytes", 0) for e in entries)
    print(f"{path}: {len(entries)} files, {total} bytes, {read} bytes read or faulted, {mapped_total} bytes mapped", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "target", "bench-data"))
    ap.add_argument("--traces", action="store_true", help="(re)capture the startup traces into fixtures/traces")
    ap.add_argument("--big", action="store_true", help="use torch instead of pyarrow for the mostly-unused image")
    ap.add_argument("--real-python", action="store_true",
                    help="only build the pyreal image (the host's python + numpy, pandas; no root)")
    a = ap.parse_args()
    if a.real_python:
        print(build_real_python(os.path.abspath(a.data)))
        return
    if os.geteuid() != 0:
        raise SystemExit("run as root (debootstrap, chroot)")
    plan = build(os.path.abspath(a.data), a.big)
    if a.traces:
        for name in ["debian", "python", "app", "bigunused"]:
            capture_trace(os.path.abspath(a.data), name, plan[name], os.path.join(ROOT, "fixtures", "traces"))


if __name__ == "__main__":
    main()
