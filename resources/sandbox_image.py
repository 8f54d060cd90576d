"""Docker for the code sandbox: start the daemon when it is installed but not running, and build the
default image offline (no registry is reachable here).

    python -m resources.sandbox_image --ensure [--image NAME]

The image is a Debian bookworm minbase made by debootstrap from the apt mirror this machine already
uses, then `docker import`ed (about a minute), with g++ for C++ answers. The image carries a label
with a stamp of what went into it; when the stamp changes (a package added), `--ensure` rebuilds it.
Users with a registry just name another image in pipeline.yaml (verification.sandbox_image) that has
`python3` (and `g++`, for C++ answers) on its PATH.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_IMAGE = "am-distill-sandbox:bookworm"
SUITE = "bookworm"
# python3-minimal lacks much of the stdlib that real test code imports (hashlib, json, collections' C
# parts are in, but e.g. `statistics`, `fractions`, `heapq`... live in libpython3-stdlib): include it.
PACKAGES = "python3-minimal,libpython3-stdlib,g++"
STAMP_LABEL = "am-distill.stamp"
# what the image is built from; a change rebuilds existing images
STAMP = hashlib.blake2b(f"{SUITE} {PACKAGES} 2".encode(), digest_size=6).hexdigest()
DOCKER_SOCKET = "/var/run/docker.sock"


class DockerUnavailable(RuntimeError):
    """Docker cannot run here; the message says why."""


def log(msg: str) -> None:
    print(f"[sandbox_image] {msg}", file=sys.stderr, flush=True)


def _client():
    import docker

    return docker.from_env(timeout=120)


def docker_ping() -> bool:
    try:
        return bool(_client().ping())
    except Exception:
        return False


def ensure_daemon(wait_s: float = 60.0) -> None:
    """Make sure a Docker daemon answers; start `dockerd` ourselves when root and it is installed."""
    if docker_ping():
        return
    if os.environ.get("DOCKER_HOST"):
        raise DockerUnavailable(f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer")
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise DockerUnavailable("dockerd is not installed (Debian: apt-get install docker.io)")
    if os.geteuid() != 0:
        raise DockerUnavailable("dockerd is installed but not running, and starting it needs root")
    logfile = open(Path(tempfile.gettempdir()) / "am-distill-dockerd.log", "ab")
    log(f"starting {dockerd} (log: {logfile.name})")
    # its own session: the daemon outlives this process (and pytest) on purpose
    subprocess.Popen([dockerd], stdout=logfile, stderr=logfile, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if os.path.exists(DOCKER_SOCKET) and docker_ping():
            return
        time.sleep(0.5)
    raise DockerUnavailable(f"dockerd did not answer within {wait_s:.0f}s; see {logfile.name}")


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    files = sorted(glob.glob("/etc/apt/sources.list.d/*")) + ["/etc/apt/sources.list"]
    for path in files:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for m in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            if "security" not in m.group(1):
                return m.group(1)
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if "security" not in m.group(1):
                return m.group(1)
    return "http://deb.debian.org/debian"


def image_exists(image: str, stamp: str | None = None) -> bool:
    """Present (and, with `stamp`, built from the current recipe)."""
    import docker

    try:
        img = _client().images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return stamp is None or (img.labels or {}).get(STAMP_LABEL) == stamp


def build_image(image: str = DEFAULT_IMAGE) -> None:
    if shutil.which("debootstrap") is None:
        raise DockerUnavailable("debootstrap is not installed (apt-get install debootstrap)")
    mirror = apt_mirror()
    with tempfile.TemporaryDirectory(prefix="am-distill-rootfs-") as root:
        log(f"debootstrap {SUITE} from {mirror} into {root} (about a minute)")
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, root, mirror],
                       check=True, stdout=subprocess.DEVNULL)
        shutil.rmtree(Path(root) / "var/cache/apt/archives", ignore_errors=True)
        log(f"docker import -> {image}")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "--change", f"LABEL {STAMP_LABEL}={STAMP}", "-", image],
                       stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError(f"tar of {root} failed")
    log(f"built {image}")


def ensure(image: str = DEFAULT_IMAGE) -> str:
    """Daemon running and image present (built when missing). Raises DockerUnavailable with a reason."""
    ensure_daemon()
    if not image_exists(image, STAMP if image == DEFAULT_IMAGE else None):
        if image != DEFAULT_IMAGE and ":" in image and "/" in image:
            raise DockerUnavailable(f"image {image} is missing and only {DEFAULT_IMAGE} can be built here")
        build_image(image)
    return image


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ensure", action="store_true", help="start dockerd if needed and build the image if missing")
    ap.add_argument("--rebuild", action="store_true", help="build the image even when present")
    ap.add_argument("--image", default=os.environ.get("AM_DISTILL_SANDBOX_IMAGE", DEFAULT_IMAGE))
    args = ap.parse_args(argv)
    try:
        if args.rebuild:
            ensure_daemon()
            build_image(args.image)
        elif args.ensure:
            ensure(args.image)
        else:
            ap.print_help()
            return 2
    except DockerUnavailable as e:
        log(f"docker unavailable: {e}")
        return 1
    log(f"ready: {args.image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
