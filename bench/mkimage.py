#!/usr/bin/python3
"""Build the benchmark images as one OCI image layout, by hand (no daemon, no umoci).

Used by bench/compare; not part of devbox.

    mkimage.py LAYOUT busybox BUSYBOX_BINARY
    mkimage.py LAYOUT debian ROOTFS_TAR

busybox       one layer: /bin/busybox and a symlink per applet (`busybox --list-full`).
debian        two layers from a debootstrap rootfs tarball: everything but usr, then usr.
debian-plus   the same two layers (same digests) plus one small layer on top.

Layers are gzip-compressed (mtime 0, level 6), so rebuilding from the same rootfs tarball
gives the same digests. Device nodes and the contents of /dev, /proc and /sys are left out,
as in Debian's own images: rootless tools cannot create device nodes anyway.
The image names in index.json (org.opencontainers.image.ref.name) are busybox, debian and
debian-plus, for `skopeo copy oci:LAYOUT:NAME docker://...`.
"""

import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CREATED = "2025-05-20T00:00:00Z"
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Hashing(io.RawIOBase):
    """A write-only file that hashes and counts what goes through it."""

    def __init__(self, out=None):
        self.out, self.h, self.n = out, hashlib.sha256(), 0

    def writable(self):
        return True

    def write(self, b):
        self.h.update(b)
        self.n += len(b)
        if self.out is not None:
            self.out.write(b)
        return len(b)


class Layout:
    def __init__(self, root):
        self.root = root
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(root, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.index = os.path.join(root, "index.json")
        if not os.path.exists(self.index):
            with open(self.index, "w") as f:
                json.dump({"schemaVersion": 2, "manifests": []}, f)

    def blob(self, data):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.root, "blobs", "sha256", d), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + d, "size": len(data)}

    def layer(self, write_tar):
        """write_tar(tarfile) fills one layer; returns (descriptor, diffID)."""
        tmp = os.path.join(self.root, "blobs", "layer.tmp")
        with open(tmp, "wb") as raw:
            gzsum = Hashing(raw)
            with gzip.GzipFile(fileobj=gzsum, mode="wb", compresslevel=6, mtime=0) as gz:
                tarsum = Hashing(gz)
                with tarfile.open(fileobj=tarsum, mode="w|", format=tarfile.PAX_FORMAT) as tf:
                    write_tar(tf)
        d = gzsum.h.hexdigest()
        os.replace(tmp, os.path.join(self.root, "blobs", "sha256", d))
        return ({"mediaType": LAYER, "digest": "sha256:" + d, "size": gzsum.n},
                "sha256:" + tarsum.h.hexdigest())

    def image(self, name, layers, cmd, history):
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                              text=True, check=True).stdout.strip()
        config = {
            "created": CREATED, "architecture": arch, "os": "linux",
            "config": {"Env": [PATH], "Cmd": cmd},
            "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]},
            "history": [{"created": CREATED, "created_by": h} for h in history],
        }
        cdesc = dict(mediaType=CONFIG, **self.blob(json.dumps(config, sort_keys=True).encode()))
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": cdesc,
                    "layers": [desc for desc, _ in layers]}
        mdesc = dict(mediaType=MANIFEST, **self.blob(json.dumps(manifest, sort_keys=True).encode()))
        mdesc["annotations"] = {"org.opencontainers.image.ref.name": name}
        with open(self.index) as f:
            index = json.load(f)
        index["manifests"] = [m for m in index["manifests"]
                              if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != name]
        index["manifests"].append(mdesc)
        with open(self.index, "w") as f:
            json.dump(index, f)
        total = sum(desc["size"] for desc, _ in layers)
        print(f"{name}: {len(layers)} layer(s), {total / 1e6:.1f} MB compressed, manifest {mdesc['digest']}")


def entry(name, kind=tarfile.DIRTYPE, mode=0o755, linkname="", data=b""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.linkname, ti.size = kind, mode, linkname, len(data)
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 1747699200, 0, 0, "root", "root"
    return ti, (io.BytesIO(data) if data else None)


def busybox(layout, binary):
    applets = subprocess.run([binary, "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    with open(binary, "rb") as f:
        exe = f.read()
    dirs = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "dev",
            "proc", "sys", "run"}
    for a in applets:
        dirs.add(os.path.dirname(a))

    def write(tf):
        for d in sorted(dirs):
            tf.addfile(*entry(d))
        tf.addfile(*entry("tmp", mode=0o1777))
        tf.addfile(*entry("etc/passwd", tarfile.REGTYPE, 0o644,
                          data=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"))
        tf.addfile(*entry("etc/group", tarfile.REGTYPE, 0o644, data=b"root:x:0:\nnogroup:x:65534:\n"))
        tf.addfile(*entry("bin/busybox", tarfile.REGTYPE, 0o755, data=exe))
        for a in sorted(set(applets)):
            if a != "bin/busybox":
                tf.addfile(*entry(a, tarfile.SYMTYPE, 0o777, linkname="/bin/busybox"))

    layout.image("busybox", [layout.layer(write)], ["/bin/sh"], ["busybox-static + applet symlinks"])


def debian(layout, rootfs_tar):
    def split(in_usr):
        def write(tf):
            where = {}
            with tarfile.open(rootfs_tar, "r:") as src:
                for m in src:
                    name = os.path.normpath(m.name).lstrip("/")
                    if name in ("", "."):
                        continue
                    top = name.split("/", 1)[0]
                    if top in ("dev", "proc", "sys") and name != top:
                        continue
                    if m.ischr() or m.isblk() or m.isfifo():
                        continue
                    if (top == "usr") != in_usr:
                        where[name] = False
                        continue
                    where[name] = True
                    m.name = name
                    if m.islnk():
                        m.linkname = os.path.normpath(m.linkname).lstrip("/")
                        if not where.get(m.linkname):
                            sys.exit(f"hardlink {name} -> {m.linkname} crosses the layer split")
                    tf.addfile(m, src.extractfile(m) if m.isreg() else None)
        return write

    base = [layout.layer(split(False)), layout.layer(split(True))]
    history = ["debootstrap --variant=minbase bookworm: all but usr", "debootstrap: usr"]
    layout.image("debian", base, ["/bin/bash"], history)

    blob = random.Random(42).randbytes(1 << 20)

    def plus(tf):
        tf.addfile(*entry("opt"))
        tf.addfile(*entry("opt/devbox-bench"))
        tf.addfile(*entry("opt/devbox-bench/README", tarfile.REGTYPE, 0o644,
                          data=b"debian-plus: one small layer on top of the debian image\n"))
        tf.addfile(*entry("opt/devbox-bench/random.bin", tarfile.REGTYPE, 0o644, data=blob))

    layout.image("debian-plus", base + [layout.layer(plus)], ["/bin/bash"],
                 history + ["one small layer: /opt/devbox-bench (1 MiB)"])


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in ("busybox", "debian"):
        sys.exit(__doc__)
    layout = Layout(sys.argv[1])
    {"busybox": busybox, "debian": debian}[sys.argv[2]](layout, sys.argv[3])


if __name__ == "__main__":
    main()
