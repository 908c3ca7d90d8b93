#!/usr/bin/env bash
# Proven install of the Debian package (issue 7, part 4; docs/install-test.md).
#
#   deploy/test-deb-install.sh [--offline] [--arch arm64] [--suite trixie] [--keep] [--root DIR]
#                              [--mirror URL] [--deb FILE]
#
# debootstraps a minimal Debian root (bookworm or trixie, amd64 or arm64, --variant=minbase),
# installs edge-pose_<version>_all.deb (or the offline build) into it with apt and checks: the
# package's files, the user and its groups, the venv, the conffile, `edge-pose validate`,
# `edge-pose estimate --json` on squat.bmp giving the same keypoints as the host's edge-pose
# (1e-3 px), `systemd-analyze verify` of the installed unit, the web view's password file (0640
# root:edge-pose, never in the log) and the documented command that opens the web view to the
# LAN with it, an upgrade to a newer build (built here from a copy of the checkout with a bumped
# version) keeping an edited config and the password, and purge leaving nothing.
# Prints PASS/FAIL per check and a summary; exits 1 when a check failed, 2 on a set-up error.
# Needs root, debootstrap, dpkg-deb, systemd-analyze, network (Debian mirror, PyPI).
#
#   --suite S     bookworm (default; Python 3.11) or trixie (Python 3.13)
#   --offline     the offline package (build-deb.sh --offline --arch amd64 --python 3.11/3.13):
#                 apt's dependencies and python3-numpy (as python3-picamera2 brings it) are
#                 installed first, then the package is installed and upgraded with no network
#                 (unshare --net) and no model mirror; the keypoints are checked against the
#                 pycoral reference (the numpy pin makes pip pick another OpenCV than the host's)
#   --arch arm64  an arm64 root, run under qemu-user-static (binfmt_misc; apt-get install
#                 qemu-user-static binfmt-support): the Raspberry Pi's architecture, about 4x
#                 slower. It emulates a Raspberry Pi 4's Cortex-A72 throughout: QEMU_CPU=
#                 cortex-a72 and that CPU's /proc/cpuinfo (bind mount). XNNPACK reads
#                 /proc/cpuinfo and /sys to pick its kernels: with the host's x86 text it
#                 crashes, and with qemu's default CPU ("max": SVE, i8mm...) its kernels give
#                 wrong keypoints. The keypoints are checked against the pycoral reference.
#                 Best with --offline (the package the Pi gets); online, pip downloads
#                 aarch64 wheels under emulation.
#   --keep        keep the root (and the built packages) for inspection
#   --root DIR    where to build the root (default: a new directory under $TMPDIR or /tmp)
#   --mirror URL  Debian mirror (default: the first one in /etc/apt/sources.list*)
#   --deb FILE    install this package instead of building one with deploy/build-deb.sh
#
# Environment: PYTHON (builds the packages; default .venv/bin/python, else python3),
# HOST_EDGE_POSE (the host's edge-pose for the reference keypoints; default .venv/bin/edge-pose),
# EDGE_POSE_TEST_DATA (default /work/shared/data), EDGE_POSE_TEST_MODELS (default
# /work/shared/models: the model mirror the postinst fetches from, copied into the root).
# shellcheck disable=SC2016  # dpkg-query formats (${Status}...) are literal on purpose
set -euo pipefail

readonly PROG="test-deb-install.sh"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
CHECKOUT="$(dirname "$SCRIPT_DIR")"
readonly CHECKOUT
# shellcheck source=SCRIPTDIR/lib/copy-source.sh
. "$SCRIPT_DIR/lib/copy-source.sh"
SUITE=bookworm
readonly MODEL_FILE=movenet_single_pose_lightning_ptq.tflite
readonly HTTP_PASSWORD=/etc/edge-pose/http-password
DATA=${EDGE_POSE_TEST_DATA:-/work/shared/data}
MODELS=${EDGE_POSE_TEST_MODELS:-/work/shared/models}
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    [[ -x $CHECKOUT/.venv/bin/python ]] && PYTHON=$CHECKOUT/.venv/bin/python
fi
HOST_EDGE_POSE=${HOST_EDGE_POSE:-$CHECKOUT/.venv/bin/edge-pose}
KEEP=0
OFFLINE=0
ARCH=amd64
ROOT=""
MIRROR=""
DEB=""

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 2
}
log() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

while (($#)); do
    case $1 in
    --keep) KEEP=1 ;;
    --offline) OFFLINE=1 ;;
    --root | --mirror | --deb | --arch | --suite)
        [[ $# -ge 2 && -n $2 && $2 != -* ]] || die "$1 needs a value"
        case $1 in
        --arch) ARCH=$2 ;;
        --suite) SUITE=$2 ;;
        --root) ROOT=$2 ;;
        --mirror) MIRROR=$2 ;;
        --deb) DEB=$2 ;;
        esac
        shift
        ;;
    -h | --help)
        sed -n '2,40s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) die "unknown option: $1 (see $PROG --help)" ;;
    esac
    shift
done

[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap, chroot, mount)"
for tool in debootstrap dpkg-deb chroot mount umount mountpoint systemd-analyze md5sum unshare; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install debootstrap systemd)"
done
[[ $(dpkg --print-architecture) == amd64 ]] || die "this test runs on an amd64 host"
case $SUITE in
bookworm) PY=3.11 ;;
trixie) PY=3.13 ;;
*) die "--suite $SUITE: bookworm or trixie" ;;
esac
case $ARCH in
amd64) ;;
arm64)
    grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null ||
        die "--arch arm64 needs qemu-user-static registered for aarch64: apt-get install qemu-user-static binfmt-support (in a container: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64)"
    ;;
*) die "--arch $ARCH: amd64 or arm64" ;;
esac
[[ -f $DATA/coral/squat.bmp ]] || die "no $DATA/coral/squat.bmp (set EDGE_POSE_TEST_DATA)"
[[ -f $MODELS/$MODEL_FILE ]] || die "no $MODELS/$MODEL_FILE (set EDGE_POSE_TEST_MODELS)"
[[ -x $HOST_EDGE_POSE ]] || die "no host edge-pose at $HOST_EDGE_POSE (make venv, or set HOST_EDGE_POSE)"

if [[ -z $MIRROR ]]; then
    # deb822 "URIs: ..." or one-line "deb URL suite ...", the first pointing at a /debian archive.
    MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' \
            -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\).*/\2/p' |
        grep -v -- '-security' | head -n 1 || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/edge-pose-install-test.XXXXXX")
ROOT=${ROOT:-$WORK/root}

# --------------------------------------------------------------------------- clean-up
MOUNTS=()
cleanup() {
    local rc=$? m i
    set +e
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        m=${MOUNTS[i]}
        if mountpoint -q "$m"; then
            umount "$m" 2>/dev/null || umount -l "$m" || echo "$PROG: warning: could not unmount $m" >&2
        fi
    done
    if ((KEEP)); then
        echo "$PROG: kept the root $ROOT and the packages in $WORK"
    elif [[ -d $ROOT ]]; then
        # Never delete through a mount still in place (the bind-mounted /dev!).
        if grep -q " $ROOT/" /proc/self/mounts; then
            echo "$PROG: warning: mounts left under $ROOT: not deleting it" >&2
        else
            rm -rf --one-file-system -- "$ROOT"
        fi
    fi
    ((KEEP)) || rm -rf --one-file-system -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_root() {
    local src=$1 dest=$ROOT$2
    shift 2
    [[ -e $dest ]] || mkdir -p "$dest" # a file (/proc/cpuinfo) is bind-mounted over as it is
    mount "$@" "$src" "$dest"
    MOUNTS+=("$dest")
}
ISOLATE=()  # (unshare --net --) while the offline package is installed: no network at all
QEMU_ENV=() # (QEMU_CPU=cortex-a72) in an arm64 root: read by qemu at every exec, so kept in env
in_root() {
    "${ISOLATE[@]}" env "${QEMU_ENV[@]}" chroot "$ROOT" \
        /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root "${QEMU_ENV[@]}" "$@"
}

# --------------------------------------------------------------------------- checks
PASSED=0
FAILED=0
FAILED_NAMES=()
RESULTS=()
# check NAME COMMAND...: runs COMMAND (its output shown indented), PASS if it exits 0.
check() {
    local name=$1 out rc=0
    shift
    out=$("$@" 2>&1) || rc=$?
    [[ -n $out ]] && printf '%s\n' "$out" | sed 's/^/    /'
    if ((rc == 0)); then
        PASSED=$((PASSED + 1))
        RESULTS+=("PASS $name")
        echo "PASS $name"
    else
        FAILED=$((FAILED + 1))
        FAILED_NAMES+=("$name")
        RESULTS+=("FAIL $name")
        echo "FAIL $name"
    fi
}
fail_msg() {
    echo "$*"
    return 1
}

# --------------------------------------------------------------------------- packages
T_START=$SECONDS
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$CHECKOUT" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
VERSION=$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' "$CHECKOUT/edge_pose/__init__.py")
[[ -n $VERSION ]] || die "no __version__ in edge_pose/__init__.py"
# The upgrade: a later version for dpkg (0.1.0 < 0.1.0.1) that pip keeps as written.
VERSION2=$VERSION.1
BUILD_ARGS=()
((OFFLINE)) && BUILD_ARGS=(--offline --arch "$ARCH" --python "$PY")
export EDGE_POSE_MODEL_MIRROR=$MODELS # the offline build bundles the model from there
log "building the packages $VERSION and $VERSION2 ${BUILD_ARGS[*]}"
mkdir -p "$WORK/v1" "$WORK/v2" "$WORK/src2"
if [[ -n $DEB ]]; then
    cp -- "$DEB" "$WORK/v1/"
    DEB1=$WORK/v1/$(basename "$DEB")
else
    DEB1=$(PYTHON=$PYTHON "$SCRIPT_DIR/build-deb.sh" "${BUILD_ARGS[@]}" --out "$WORK/v1")
fi
copy_source "$CHECKOUT" "$WORK/src2"
sed -i "s/^__version__ = \".*\"$/__version__ = \"$VERSION2\"/" "$WORK/src2/edge_pose/__init__.py"
{
    printf 'edge-pose (%s) unstable; urgency=medium\n\n  * Upgrade test build (deploy/test-deb-install.sh).\n\n' "$VERSION2"
    printf ' -- edge-pose tests <tests@localhost>  %s\n\n' "$(date -R -u -d "@$SOURCE_DATE_EPOCH")"
    cat "$CHECKOUT/deploy/debian/changelog"
} >"$WORK/src2/deploy/debian/changelog.new"
mv "$WORK/src2/deploy/debian/changelog.new" "$WORK/src2/deploy/debian/changelog"
DEB2=$(PYTHON=$PYTHON "$WORK/src2/deploy/build-deb.sh" "${BUILD_ARGS[@]}" --out "$WORK/v2")
PKG_VERSION=$(dpkg-deb -f "$DEB1" Version)
echo "packages: $DEB1 ($(du -k "$DEB1" | cut -f1) KiB), $DEB2"

# --------------------------------------------------------------------------- the root
log "debootstrap $SUITE (minbase + systemd procps, $ARCH) from $MIRROR into $ROOT"
T0=$SECONDS
debootstrap --variant=minbase --arch="$ARCH" --include=systemd,procps "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    {
        tail -n 30 "$WORK/debootstrap.log" >&2
        die "debootstrap failed (log above)"
    }
T_DEBOOTSTRAP=$((SECONDS - T0))
mount_root proc /proc -t proc
if [[ $ARCH == arm64 ]]; then
    # A Raspberry Pi 4's CPU (Cortex-A72, 4 cores), the same for qemu and for XNNPACK's cpuinfo.
    QEMU_ENV=(QEMU_CPU=cortex-a72)
    for cpu in 0 1 2 3; do
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$cpu"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
    done >"$WORK/cpuinfo"
    mount_root "$WORK/cpuinfo" /proc/cpuinfo --bind
fi
mount_root sysfs /sys -t sysfs
mount_root /dev /dev --bind
mount_root /dev/pts /dev/pts --bind
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# Daemons never start in the root (deb-systemd-invoke and invoke-rc.d honour this).
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
# The model mirror for the postinst's fetch (it runs as the user edge-pose: world-readable).
install -d -m 0755 "$ROOT/srv/edge-pose-models"
install -m 0644 "$MODELS"/*.tflite "$MODELS/SHA256SUMS" "$ROOT/srv/edge-pose-models/" 2>/dev/null ||
    install -m 0644 "$MODELS"/*.tflite "$ROOT/srv/edge-pose-models/"
install -m 0644 "$DATA/coral/squat.bmp" "$ROOT/tmp/squat.bmp"
cp -- "$DEB1" "$DEB2" "$ROOT/tmp/"
# pip's network settings of the host, for the postinst's pip (a TLS-intercepting proxy's CA
# bundle is copied to /tmp of the root, which the leftover check ignores).
PIP_ENV=()
for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_DEFAULT_TIMEOUT PIP_PROXY \
    http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [[ -n ${!v:-} ]]; then PIP_ENV+=("$v=${!v}"); fi
done
HOST_CA=${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-}}}
if [[ -n $HOST_CA && -f $HOST_CA ]]; then
    install -m 0644 "$HOST_CA" "$ROOT/tmp/host-ca-bundle.crt"
    PIP_ENV+=(PIP_CERT=/tmp/host-ca-bundle.crt)
fi
in_root apt-get update -qq
SYSTEM_NUMPY=""
if ((OFFLINE)); then
    # What a Raspberry Pi OS image has before the package comes: Python, venv, systemd's
    # bindings and the numpy python3-picamera2 depends on. Everything after this is offline.
    log "apt-get install python3 python3-venv python3-systemd python3-numpy (before going offline)"
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv \
        python3-systemd python3-numpy >"$WORK/deps.log" 2>&1 || {
        tail -n 20 "$WORK/deps.log" >&2
        die "could not install the dependencies from $MIRROR"
    }
    SYSTEM_NUMPY=$(in_root python3 -c 'import numpy; print(numpy.__version__)')
    PIP_ENV=()
fi
MODEL_ENV=(EDGE_POSE_MODEL_MIRROR=/srv/edge-pose-models)
APT_OPTS=()
# Offline as documented: apt must not try to fetch a Recommends it knows of but cannot download.
((OFFLINE)) && MODEL_ENV=() APT_OPTS=(--no-install-recommends)
# Everything in the root now, to find what purge leaves behind.
snapshot() {
    (cd "$ROOT" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./tmp -o -path ./run \
        -o -path ./var/cache -o -path ./var/log -o -path ./var/lib/apt -o -path ./var/lib/dpkg \) -prune \
        -o -print | sed 's|^\.||' | LC_ALL=C sort)
}
snapshot >"$WORK/before.txt"
SIZE_BEFORE=$(du -sxk "$ROOT" | cut -f1)

# --------------------------------------------------------------------------- install
log "apt-get install /tmp/$(basename "$DEB1")"
T0=$SECONDS
INSTALL_OK=1
((OFFLINE)) && ISOLATE=(unshare --net --)
in_root env DEBIAN_FRONTEND=noninteractive "${MODEL_ENV[@]}" "${PIP_ENV[@]}" \
    apt-get install -y -q "${APT_OPTS[@]}" "/tmp/$(basename "$DEB1")" >"$WORK/install.log" 2>&1 || INSTALL_OK=0
ISOLATE=()
T_INSTALL=$((SECONDS - T0))
sed 's/^/    /' "$WORK/install.log" | grep -v -e '^    Get:' -e 'Reading database \.\.\. [0-9]*%' | tail -n 40
SIZE_AFTER=$(du -sxk "$ROOT" | cut -f1)
SIZE_OPT=$(du -sxk "$ROOT/opt/edge-pose" 2>/dev/null | cut -f1 || echo 0)
NEW_DEBS=$(grep -c '^Setting up ' "$WORK/install.log" || true)
check "apt install of $(basename "$DEB1") (${T_INSTALL}s)" test "$INSTALL_OK" -eq 1
check "postinst skipped starting the service (systemd not running in the root)" \
    grep -q 'systemd is not running here' "$WORK/install.log"

check_files() {
    local f bad=0
    in_root dpkg-query -W -f='${Status} ${Version}\n' edge-pose | grep -qx "install ok installed $PKG_VERSION" ||
        fail_msg "dpkg: edge-pose $PKG_VERSION not 'install ok installed'" || bad=1
    while IFS= read -r f; do
        [[ -e $ROOT$f || -L $ROOT$f ]] || {
            echo "missing: $f"
            bad=1
        }
    done < <(in_root dpkg -L edge-pose)
    for f in /usr/lib/systemd/system/edge-pose.service /usr/lib/udev/rules.d/60-edge-pose-coral.rules \
        /usr/lib/sysusers.d/edge-pose.conf /usr/lib/tmpfiles.d/edge-pose.conf /etc/edge-pose/config.toml \
        /usr/share/man/man1/edge-pose.1.gz /usr/share/doc/edge-pose/copyright; do
        [[ -f $ROOT$f ]] || {
            echo "missing: $f"
            bad=1
        }
    done
    [[ $(readlink "$ROOT/usr/bin/edge-pose") == /opt/edge-pose/venv/bin/edge-pose ]] ||
        fail_msg "/usr/bin/edge-pose is not a link to the venv's command" || bad=1
    in_root test -x /usr/bin/edge-pose || fail_msg "/usr/bin/edge-pose does not resolve to a program" || bad=1
    in_root dpkg --verify edge-pose || fail_msg "dpkg --verify edge-pose reports changes" || bad=1
    return "$bad"
}
check "files: dpkg -L all present, dpkg --verify clean, /usr/bin/edge-pose -> venv" check_files

check_user() {
    local pw groups g bad=0
    pw=$(in_root getent passwd edge-pose) || fail_msg "no user edge-pose" || return 1
    echo "$pw"
    IFS=: read -r _ _ uid _ _ home shell <<<"$pw"
    ((uid < 1000)) || fail_msg "edge-pose is not a system user (uid $uid)" || bad=1
    [[ $home == /var/lib/edge-pose ]] || fail_msg "home is $home" || bad=1
    [[ $shell == /usr/sbin/nologin ]] || fail_msg "shell is $shell" || bad=1
    groups=$(in_root id -nG edge-pose)
    echo "groups: $groups"
    for g in edge-pose video plugdev apex; do
        [[ " $groups " == *" $g "* ]] || fail_msg "not in group $g" || bad=1
    done
    [[ $(in_root stat -c '%U:%G %a' /var/lib/edge-pose) == "edge-pose:edge-pose 750" ]] ||
        fail_msg "/var/lib/edge-pose: $(in_root stat -c '%U:%G %a' /var/lib/edge-pose)" || bad=1
    return "$bad"
}
check "user edge-pose (system, nologin) in groups video plugdev apex; /var/lib/edge-pose 0750" check_user

check_venv() {
    local bad=0 v numpy
    grep -qx 'include-system-site-packages = true' "$ROOT/opt/edge-pose/venv/pyvenv.cfg" ||
        fail_msg "venv without --system-site-packages" || bad=1
    v=$(in_root /opt/edge-pose/venv/bin/python -c 'import edge_pose; print(edge_pose.__version__)') ||
        fail_msg "edge_pose does not import in the venv" || bad=1
    [[ $v == "$1" ]] || fail_msg "venv has edge_pose $v, expected $1" || bad=1
    in_root /opt/edge-pose/venv/bin/python -m pip check --disable-pip-version-check || bad=1
    in_root /opt/edge-pose/venv/bin/python -c 'import systemd.daemon' ||
        fail_msg "apt's python3-systemd not seen in the venv" || bad=1
    if [[ -n $SYSTEM_NUMPY ]]; then
        numpy=$(in_root /opt/edge-pose/venv/bin/python -c 'import numpy; print(numpy.__version__, numpy.__file__)')
        echo "numpy in the venv: $numpy"
        [[ $numpy == "$SYSTEM_NUMPY /usr/lib/python3/dist-packages/"* ]] ||
            fail_msg "the venv does not use apt's numpy $SYSTEM_NUMPY (picamera2 needs it)" || bad=1
    fi
    echo "venv: $(in_root /opt/edge-pose/venv/bin/python --version), edge_pose $v, $(du -sxh "$ROOT/opt/edge-pose" | cut -f1)"
    return "$bad"
}
check "venv /opt/edge-pose/venv (--system-site-packages, edge_pose $VERSION, pip check, python3-systemd)" \
    check_venv "$VERSION"

check_conffile() {
    local line md5
    line=$(in_root dpkg-query -W -f='${Conffiles}\n' edge-pose | grep ' /etc/edge-pose/config.toml ') ||
        fail_msg "/etc/edge-pose/config.toml is not a conffile" || return 1
    echo "conffile:$line"
    md5=$(md5sum "$ROOT/etc/edge-pose/config.toml" | cut -d' ' -f1)
    [[ $line == *" $md5"* ]] || fail_msg "config.toml differs from the packaged one" || return 1
    cmp -s "$ROOT/etc/edge-pose/config.toml" "$CHECKOUT/config/edge-pose.toml" ||
        fail_msg "config.toml is not config/edge-pose.toml"
}
check "conffile /etc/edge-pose/config.toml registered, unmodified" check_conffile

check_model() {
    local want have
    want=$(sha256sum "$MODELS/$MODEL_FILE" | cut -d' ' -f1)
    have=$(sha256sum "$ROOT/var/lib/edge-pose/models/$MODEL_FILE" 2>/dev/null | cut -d' ' -f1) ||
        fail_msg "postinst fetched no model into /var/lib/edge-pose/models" || return 1
    [[ $have == "$want" ]] || fail_msg "fetched model differs from the mirror's" || return 1
    local source=/srv/edge-pose-models
    ((OFFLINE)) && source=/usr/share/edge-pose/models
    grep -qF "from file://$source/$MODEL_FILE" "$WORK/install.log" ||
        fail_msg "postinst did not take the model from $source" || return 1
    in_root stat -c '%U %n' "/var/lib/edge-pose/models/$MODEL_FILE"
    in_root sh -c 'cd /var/lib/edge-pose && runuser -u edge-pose -- edge-pose models verify'
}
if ((OFFLINE)); then
    check "model installed by postinst from the package's /usr/share/edge-pose/models, verified" check_model
else
    check "model fetched by postinst from EDGE_POSE_MODEL_MIRROR, verified" check_model
fi

check "edge-pose validate --config /etc/edge-pose/config.toml" \
    in_root edge-pose validate --config /etc/edge-pose/config.toml

compare_keypoints() {
    "$HOST_EDGE_POSE" estimate --json --config "$CHECKOUT/config/edge-pose.toml" \
        --model "$MODELS/$MODEL_FILE" "$DATA/coral/squat.bmp" >"$WORK/host.json" ||
        fail_msg "host edge-pose estimate failed" || return 1
    in_root sh -c 'cd /var/lib/edge-pose && runuser -u edge-pose -- edge-pose estimate --json --config /etc/edge-pose/config.toml /tmp/squat.bmp' \
        >"$WORK/root.json" || fail_msg "edge-pose estimate in the root failed" || return 1
    python3 - "$WORK/host.json" "$WORK/root.json" <<'EOF'
import json, sys
def load(p):
    d = json.load(open(p))
    d = d[0] if isinstance(d, list) else d
    return d
h, r = load(sys.argv[1]), load(sys.argv[2])
hk = {k["name"]: k for k in h["keypoints"]}
rk = {k["name"]: k for k in r["keypoints"]}
assert len(hk) == 17 and hk.keys() == rk.keys(), (sorted(hk), sorted(rk))
worst = max(max(abs(hk[n]["x"] - rk[n]["x"]), abs(hk[n]["y"] - rk[n]["y"])) for n in hk)
wscore = max(abs(hk[n]["score"] - rk[n]["score"]) for n in hk)
print(f"17 keypoints, max |dx|,|dy| = {worst:.4g} px, max |dscore| = {wscore:.4g}, "
      f"score host {h['score']} root {r['score']}")
sys.exit(0 if worst <= 1e-3 and wscore <= 1e-3 else 1)
EOF
}
# The offline check: squat.bmp squeezed whole, one pass, as pycoral made its reference CSV.
compare_reference() {
    in_root sh -c 'cd /var/lib/edge-pose && runuser -u edge-pose -- edge-pose estimate --json --config /etc/edge-pose/config.toml --fit stretch --no-refine /tmp/squat.bmp' \
        >"$WORK/root.json" || fail_msg "edge-pose estimate in the root failed" || return 1
    python3 - "$WORK/root.json" "$DATA/coral/movenet_single_pose_lightning_ptq_reference.csv" <<'EOF'
import csv, json, sys
r = json.load(open(sys.argv[1]))
rows = sorted(csv.DictReader(open(sys.argv[2])), key=lambda row: int(row["keypoint_id"]))
errors = [max(abs(k["x"] / r["width"] - float(row["keypoint_x"])),
              abs(k["y"] / r["height"] - float(row["keypoint_y"])))
          for k, row in zip(r["keypoints"], rows, strict=True)]
print(f"17 keypoints vs the pycoral reference: max error {max(errors):.4f}, mean "
      f"{sum(errors) / 17:.4f} (normalized; limits 0.05, 0.025)")
sys.exit(0 if max(errors) <= 0.05 and sum(errors) / 17 <= 0.025 else 1)
EOF
}
if ((OFFLINE)) || [[ $ARCH != amd64 ]]; then
    check "edge-pose estimate squat.bmp in the root = pycoral reference (0.05, mean 0.025)" compare_reference
else
    check "edge-pose estimate squat.bmp in the root = on the host (1e-3 px)" compare_keypoints
fi

# The root's own systemd-analyze: the unit is checked by the systemd it will run under (the
# host's may be older and trip over the root's newer units, e.g. bookworm's 252 on trixie's 257).
check_unit() {
    local out bad=0
    in_root systemd-analyze --version | head -n 1
    out=$(in_root systemd-analyze verify /usr/lib/systemd/system/edge-pose.service 2>&1) || bad=1
    [[ -z $out ]] || {
        echo "$out"
        bad=1
    }
    [[ -L $ROOT/etc/systemd/system/multi-user.target.wants/edge-pose.service ]] ||
        fail_msg "not enabled (no multi-user.target.wants link)" || bad=1
    return "$bad"
}
check "systemd-analyze verify of the installed unit in the root (silent), unit enabled" check_unit

# The web view's password: made by the postinst, readable by the service only, never printed;
# then the command the postinst prints turns LAN access on, and the service user validates it.
check_http_password() {
    local bad=0 meta password
    meta=$(in_root stat -c '%a %U:%G' "$HTTP_PASSWORD") || fail_msg "postinst made no $HTTP_PASSWORD" || return 1
    echo "$HTTP_PASSWORD: $meta"
    [[ $meta == "640 root:edge-pose" ]] || fail_msg "$HTTP_PASSWORD is $meta, not 640 root:edge-pose" || bad=1
    password=$(cat "$ROOT$HTTP_PASSWORD")
    [[ $password =~ ^[A-Za-z0-9_-]{24}$ ]] || fail_msg "$HTTP_PASSWORD does not hold 24 random characters" || bad=1
    if grep -qF -- "$password" "$WORK/install.log"; then
        echo "the password is in apt's output"
        bad=1
    fi
    grep -qF "made $HTTP_PASSWORD" "$WORK/install.log" || fail_msg "postinst did not say it made $HTTP_PASSWORD" || bad=1
    grep -qF "sudo edge-pose config set http.bind=0.0.0.0 http.password_file=$HTTP_PASSWORD" "$WORK/install.log" ||
        fail_msg "postinst did not print how to open the web view to the LAN" || bad=1
    in_root runuser -u edge-pose -- test -r "$HTTP_PASSWORD" || fail_msg "the user edge-pose cannot read $HTTP_PASSWORD" || bad=1
    if in_root runuser -u nobody -- test -r "$HTTP_PASSWORD"; then
        echo "another user (nobody) can read $HTTP_PASSWORD"
        bad=1
    fi
    in_root edge-pose config set http.bind=0.0.0.0 "http.password_file=$HTTP_PASSWORD" ||
        fail_msg "the documented config set failed" || bad=1
    in_root sh -c 'cd /var/lib/edge-pose && runuser -u edge-pose -- edge-pose validate --config /etc/edge-pose/config.toml' ||
        fail_msg "validate as the user edge-pose with LAN access on" || bad=1
    return "$bad"
}
check "web view's password $HTTP_PASSWORD (0640 root:edge-pose, not in the log); LAN access as documented, validated as edge-pose" \
    check_http_password

# --------------------------------------------------------------------------- upgrade
log "upgrade to $VERSION2 with an edited config"
PASSWORD_SUM=$(sha256sum "$ROOT$HTTP_PASSWORD" 2>/dev/null | cut -d' ' -f1 || true)
readonly EDIT_MARK="# edited by test-deb-install.sh"
printf '%s\n' "$EDIT_MARK" >>"$ROOT/etc/edge-pose/config.toml"
T0=$SECONDS
UPGRADE_OK=1
((OFFLINE)) && ISOLATE=(unshare --net --)
in_root env DEBIAN_FRONTEND=noninteractive "${MODEL_ENV[@]}" "${PIP_ENV[@]}" \
    apt-get install -y -q "${APT_OPTS[@]}" -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "/tmp/$(basename "$DEB2")" >"$WORK/upgrade.log" 2>&1 || UPGRADE_OK=0
ISOLATE=()
T_UPGRADE=$((SECONDS - T0))
sed 's/^/    /' "$WORK/upgrade.log" | grep -v 'Reading database \.\.\. [0-9]*%' | tail -n 15
check_upgrade() {
    local bad=0 v
    ((UPGRADE_OK)) || fail_msg "apt-get install of $(basename "$DEB2") failed" || bad=1
    v=$(in_root dpkg-query -W -f='${Version}' edge-pose)
    [[ $v == "$VERSION2" ]] || fail_msg "installed version $v, expected $VERSION2" || bad=1
    grep -qxF "$EDIT_MARK" "$ROOT/etc/edge-pose/config.toml" || fail_msg "the edit of config.toml is lost" || bad=1
    grep -qx 'bind = "0.0.0.0"' "$ROOT/etc/edge-pose/config.toml" || fail_msg "the LAN setting of config.toml is lost" || bad=1
    [[ -n $PASSWORD_SUM && $(sha256sum "$ROOT$HTTP_PASSWORD" 2>/dev/null | cut -d' ' -f1) == "$PASSWORD_SUM" ]] ||
        fail_msg "the upgrade did not keep $HTTP_PASSWORD as it was" || bad=1
    [[ $(in_root stat -c '%a %U:%G' "$HTTP_PASSWORD") == "640 root:edge-pose" ]] || fail_msg "$HTTP_PASSWORD changed mode or owner" || bad=1
    [[ -z $(find "$ROOT/etc/edge-pose" -name '*.dpkg-*') ]] ||
        fail_msg "dpkg left $(find "$ROOT/etc/edge-pose" -name '*.dpkg-*')" || bad=1
    check_venv "$VERSION2" || bad=1
    [[ $(in_root edge-pose --version) == *"$VERSION2"* ]] || fail_msg "edge-pose --version: $(in_root edge-pose --version)" || bad=1
    in_root edge-pose validate --config /etc/edge-pose/config.toml >/dev/null || fail_msg "validate after upgrade" || bad=1
    return "$bad"
}
check "upgrade $VERSION -> $VERSION2 (${T_UPGRADE}s): edited config and web password kept, venv updated, validate" check_upgrade

# --------------------------------------------------------------------------- purge
log "apt-get purge edge-pose"
PURGE_OK=1
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q edge-pose >"$WORK/purge.log" 2>&1 || PURGE_OK=0
sed 's/^/    /' "$WORK/purge.log" | grep -v 'Reading database \.\.\. [0-9]*%' | tail -n 8
check_purge() {
    local bad=0 owned left f
    ((PURGE_OK)) || fail_msg "apt-get purge failed" || bad=1
    if in_root dpkg-query -W -f='${Status}\n' edge-pose 2>/dev/null | grep -q 'installed\|config-files'; then
        fail_msg "dpkg still knows edge-pose: $(in_root dpkg-query -W -f='${Status}' edge-pose)" || bad=1
    fi
    if in_root getent passwd edge-pose; then echo "the user edge-pose is still there"; bad=1; fi
    if in_root getent group edge-pose; then echo "the group edge-pose is still there"; bad=1; fi
    if grep -l '^edge-pose:\|[:,]edge-pose\(,\|$\)' "$ROOT"/etc/{passwd,group,shadow,gshadow}; then
        echo "edge-pose still named in the account files above"
        bad=1
    fi
    if grep -rl edge-pose "$ROOT/var/lib/systemd" "$ROOT/etc/systemd" 2>/dev/null; then
        echo "systemd state or links left"
        bad=1
    fi
    # New paths since before the install, not owned by a package (apt's dependencies stay).
    snapshot >"$WORK/after.txt"
    # /lib/... in the lists is /usr/lib/... on the merged-/usr root: both spellings count.
    cat "$ROOT"/var/lib/dpkg/info/*.list |
        sed -n -e p -e 's@^/\(bin\|sbin\|lib\|lib64\)\(/.*\)\{0,1\}$@/usr/\1\2@p' |
        LC_ALL=C sort -u >"$WORK/owned.txt"
    owned=$WORK/owned.txt
    # Files made by the dependencies' own maintainer scripts (ca-certificates, python3, netbase's
    # /etc/hosts and /etc/networks on trixie, shadow's backups) are not edge-pose's: ignored by
    # path; the rest must be owned by a package.
    left=$(LC_ALL=C comm -13 "$WORK/before.txt" "$WORK/after.txt" | LC_ALL=C comm -23 - "$owned" |
        grep -v -e '/__pycache__\(/\|$\)' -e '^/etc/ld\.so\.cache$' -e '^/var/lib/python\(/\|$\)' \
            -e '^/etc/ssl/certs/' -e '^/etc/inputrc$' -e '^/etc/ca-certificates\.conf$' -e '^/usr/local/share/ca-certificates$' \
            -e '^/etc/\(hosts\|networks\)$' \
            -e '^/etc/python3\(/\|$\)' -e '^/usr/local/lib/python3\.[0-9]*\(/\|$\)' \
            -e '^/etc/\(passwd\|group\|shadow\|gshadow\|subuid\|subgid\)-$' \
            -e '^/var/lib/systemd/\(catalog\|deb-systemd-helper-enabled\|deb-systemd-helper-masked\)$' || true)
    if [[ -n $left ]]; then
        echo "left behind (not owned by any package):"
        while IFS= read -r f; do printf '  %s\n' "$f"; done <<<"$left"
        bad=1
    fi
    if [[ -e $ROOT/opt/edge-pose || -e $ROOT/etc/edge-pose || -e $ROOT/var/lib/edge-pose ]]; then
        echo "/opt/edge-pose, /etc/edge-pose or /var/lib/edge-pose still there"
        bad=1
    fi
    if [[ -e $ROOT$HTTP_PASSWORD || -L $ROOT$HTTP_PASSWORD ]]; then
        echo "$HTTP_PASSWORD still there"
        bad=1
    fi
    if grep -q '^apex:' "$ROOT/etc/group"; then echo "note: the group apex stays (by design, postrm)"; fi
    if grep -qs '^edge-pose:' "$ROOT"/etc/{passwd,group,shadow,gshadow}-; then
        echo "note: shadow's backups /etc/{passwd,group,shadow,gshadow}- still name edge-pose (userdel's backup of the previous state; replaced at the next account change)"
    fi
    return "$bad"
}
check "purge leaves nothing (files, the web view's password, user, group, systemd state)" check_purge

# --------------------------------------------------------------------------- summary
T_TOTAL=$((SECONDS - T_START))
echo
MODE=online
((OFFLINE)) && MODE="offline, no network for install and upgrade, apt's numpy $SYSTEM_NUMPY"
echo "== summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $SUITE $ARCH, edge-pose $PKG_VERSION -> $VERSION2, $MODE)"
printf '  %s\n' "${RESULTS[@]}"
echo "  package $(basename "$DEB1"): $(du -k "$DEB1" | cut -f1) KiB"
echo "  root: ${SIZE_BEFORE} KiB after debootstrap; +$((SIZE_AFTER - SIZE_BEFORE)) KiB installed" \
    "(/opt/edge-pose venv ${SIZE_OPT} KiB; $NEW_DEBS packages set up by apt)"
echo "  times: debootstrap ${T_DEBOOTSTRAP}s, install ${T_INSTALL}s, upgrade ${T_UPGRADE}s, total ${T_TOTAL}s"
if ((FAILED)); then
    echo "RESULT: FAIL ($FAILED of $((PASSED + FAILED)) checks failed: ${FAILED_NAMES[*]})"
    exit 1
fi
echo "RESULT: PASS ($PASSED checks)"
