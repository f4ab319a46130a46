#!/usr/bin/env python3
"""mkimage.py: a one-layer container image as a docker-archive tarball, which
`ctr images import` loads (no registry is reachable on the CI machines).

usage: mkimage.py OUT.tar NAME:TAG ENTRYPOINT_JSON CMD_JSON ITEM...
  --dir /path               an empty directory (0755)
  --file /path=SRC[:MODE]   a file copied from SRC (mode octal, default 755)
  --link /path=TARGET       a symlink
  --busybox SRC             busybox at /bin/busybox with a link per applet,
                            plus /etc /tmp /proc /sys /dev /root /var /run
Everything is owned by root with mtime 0, so the same inputs give the same image."""
import hashlib
import io
import json
import subprocess
import sys
import tarfile


def entries(args):
    out = []
    it = iter(args)
    for flag in it:
        val = next(it)
        if flag == "--dir":
            out.append((val, "dir", None, 0o755))
        elif flag == "--file":
            path, src = val.split("=", 1)
            mode = 0o755
            if ":" in src:
                src, m = src.rsplit(":", 1)
                mode = int(m, 8)
            out.append((path, "file", src, mode))
        elif flag == "--link":
            path, target = val.split("=", 1)
            out.append((path, "link", target, 0o777))
        elif flag == "--busybox":
            for d in ["/bin", "/etc", "/proc", "/sys", "/dev", "/root", "/var", "/run"]:
                out.append((d, "dir", None, 0o755))
            out.append(("/tmp", "dir", None, 0o1777))
            out.append(("/bin/busybox", "file", val, 0o755))
            applets = subprocess.run([val, "--list"], capture_output=True, text=True, check=True).stdout.split()
            out += [("/bin/" + a, "link", "busybox", 0o777) for a in applets if a != "busybox"]
        else:
            sys.exit(f"mkimage.py: unknown item {flag}")
    return out


def layer(items):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        seen = set()
        for path, kind, src, mode in items:
            name = path.lstrip("/")
            if name in seen:
                continue
            seen.add(name)
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type = tarfile.SYMTYPE
                info.linkname = src
                tar.addfile(info)
            else:
                with open(src, "rb") as f:
                    data = f.read()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    out, ref, entrypoint, cmd = sys.argv[1:5]
    blob = layer(entries(sys.argv[5:]))
    diff_id = "sha256:" + hashlib.sha256(blob).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Entrypoint": json.loads(entrypoint),
            "Cmd": json.loads(cmd),
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "scripts/k8s/mkimage.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id[len("sha256:"):] + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": [layer_name]}]).encode()
    with tarfile.open(out, "w") as tar:
        for name, data in ((layer_name, blob), (config_name, config_bytes), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    print(f"{out} {ref} sha256:{config_name[:-5]}")


main()
