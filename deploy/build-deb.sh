#!/usr/bin/env bash
# Build the Debian package edge-pose_<version>_all.deb (docs/packaging.md).
#
#   deploy/build-deb.sh [--out DIR]    default DIR: dist/ of the checkout
#   deploy/build-deb.sh --offline [--arch arm64|amd64] [--python 3.11|3.13] [--numpy VERSION]
#                       [--model NAME]... [--out DIR]
#
# --offline builds edge-pose_<version>_<arch>.deb for devices without internet: it also carries
# a wheelhouse of every dependency for that target (/usr/lib/edge-pose/wheels, taken with
# `pip download --platform ... --only-binary=:all:`) and the model(s) (/usr/share/edge-pose/models,
# default movenet_lightning_int8, fetched with `edge-pose models fetch`, EDGE_POSE_MODEL_MIRROR
# honoured). --arch defaults to arm64 (64-bit Raspberry Pi OS), --python to 3.11 (Bookworm;
# 3.13 is Trixie), --numpy to that release's python3-numpy (1.24.2, 2.2.4), which the postinst
# keeps for picamera2.
#
# From the project alone, with dpkg-deb (no debhelper, no source package): edge-pose as a wheel
# (pip wheel, built from a temporary copy so nothing is written into the checkout), the systemd
# unit, the Coral udev rules, sysusers.d and tmpfiles.d entries, the default config as the
# conffile /etc/edge-pose/config.toml and the maintainer scripts in deploy/debian/. The version
# is edge_pose.__version__; deploy/debian/changelog must have an entry for it.
#
# Environment: PYTHON (default python3) builds the wheel; pip's own settings (PIP_INDEX_URL,
# PIP_NO_BUILD_ISOLATION...) apply. SOURCE_DATE_EPOCH (default: the last commit's time) clamps
# the file times in the package.
set -euo pipefail

readonly PROG="build-deb.sh"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
CHECKOUT="$(dirname "$SCRIPT_DIR")"
readonly CHECKOUT
readonly DEBIAN_DIR=$SCRIPT_DIR/debian
# shellcheck source=SCRIPTDIR/lib/copy-source.sh
. "$SCRIPT_DIR/lib/copy-source.sh"
PYTHON=${PYTHON:-python3}
OUT=$CHECKOUT/dist
OFFLINE=0
ARCH=""
PY=""
NUMPY=""
MODELS=()

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

usage() {
    sed -n '2,24s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

while (($#)); do
    case $1 in
    -o | --out)
        [[ $# -ge 2 && -n $2 && $2 != -* ]] || die "$1 needs a directory"
        OUT=$2
        shift
        ;;
    --out=*) OUT=${1#*=} ;;
    --offline) OFFLINE=1 ;;
    --arch | --python | --numpy | --model)
        [[ $# -ge 2 && -n $2 && $2 != -* ]] || die "$1 needs a value"
        case $1 in
        --arch) ARCH=$2 ;;
        --python) PY=$2 ;;
        --numpy) NUMPY=$2 ;;
        --model) MODELS+=("$2") ;;
        esac
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown option: $1 (see $PROG --help)" ;;
    esac
    shift
done

if ((OFFLINE)); then
    ARCH=${ARCH:-arm64}
    PY=${PY:-3.11}
    case $ARCH in
    arm64) MACHINE=aarch64 ;;
    amd64) MACHINE=x86_64 ;;
    armhf) die "--arch armhf: PyPI has no 32-bit ARM wheels of ai-edge-litert and OpenCV; install the 64-bit Raspberry Pi OS and use --arch arm64" ;;
    *) die "--arch $ARCH: use arm64 (Raspberry Pi 3/4/5, 64-bit OS) or amd64" ;;
    esac
    # The Debian release of each Python: its glibc (the newest manylinux tag its wheels may
    # need) and its python3-numpy.
    case $PY in
    3.11) GLIBC_MINOR=36 RELEASE_NUMPY=1.24.2 ;; # Bookworm
    3.13) GLIBC_MINOR=41 RELEASE_NUMPY=2.2.4 ;;  # Trixie
    *) die "--python $PY: use 3.11 (Raspberry Pi OS Bookworm) or 3.13 (Trixie)" ;;
    esac
    NUMPY=${NUMPY:-$RELEASE_NUMPY}
    [[ $NUMPY =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "--numpy $NUMPY: not a version like 1.24.2 (the wheel's full version)"
    ((${#MODELS[@]})) || MODELS=(movenet_lightning_int8)
elif [[ -n $ARCH$PY$NUMPY || ${#MODELS[@]} -gt 0 ]]; then
    die "--arch, --python, --numpy and --model go with --offline (the online package is Architecture: all)"
fi

for tool in dpkg-deb gzip tar; do
    command -v "$tool" >/dev/null || die "$tool not found: sudo apt-get install dpkg gzip tar"
done
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip (set PYTHON=/path/to/python3)"
# Absolute (the models are fetched from inside the source copy), the venv's link kept as it is.
[[ $PYTHON != */* ]] || PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"

VERSION=$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' "$CHECKOUT/edge_pose/__init__.py")
[[ $VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]] ||
    die "edge_pose/__init__.py: no usable __version__ (got '$VERSION')"
CHANGELOG_VERSION=$(sed -n '1s/^edge-pose (\([^)]*\)).*/\1/p' "$DEBIAN_DIR/changelog")
[[ $CHANGELOG_VERSION == "$VERSION" ]] ||
    die "deploy/debian/changelog starts with version '$CHANGELOG_VERSION' but edge_pose.__version__ is '$VERSION': add a changelog entry for $VERSION"

if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git -C "$CHECKOUT" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

mkdir -p -- "$OUT"
OUT=$(cd -- "$OUT" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/edge-pose-deb.XXXXXX")
trap 'rm -rf -- "$TMP"' EXIT
umask 022

# --------------------------------------------------------------------------- the wheel
# pip builds inside the source tree (build/, *.egg-info): build from a copy.
mkdir -p "$TMP/src" "$TMP/wheel"
copy_source "$CHECKOUT" "$TMP/src"
"$PYTHON" -m pip wheel --no-deps --disable-pip-version-check --no-input --quiet \
    -w "$TMP/wheel" "$TMP/src" >&2 || die "pip wheel failed (see above)"
WHEEL=$TMP/wheel/edge_pose-$VERSION-py3-none-any.whl
[[ -f $WHEEL ]] || die "pip built no $(basename "$WHEEL") (got: $(ls "$TMP/wheel"))"

# --------------------------------------------------------------------------- the tree
ROOT=$TMP/root
put() { # put SRC DEST MODE
    install -D -m "$3" "$1" "$ROOT$2"
}
put "$WHEEL" "/usr/share/edge-pose/$(basename "$WHEEL")" 0644

# --------------------------------------------------------------------------- offline parts
# Every dependency of the wheel as a binary wheel for the target: CPython $PY (its own ABI,
# abi3 and pure wheels), manylinux glibc 2.17 up to the release's glibc, on $MACHINE.
bundle_wheels() {
    local dest=$ROOT/usr/lib/edge-pose/wheels minor oldest=17 platforms=()
    [[ $MACHINE == x86_64 ]] && oldest=5 # aarch64 wheels start at glibc 2.17
    for ((minor = GLIBC_MINOR; minor >= oldest; minor--)); do
        platforms+=(--platform "manylinux_2_${minor}_$MACHINE")
    done
    platforms+=(--platform "manylinux2014_$MACHINE")
    [[ $MACHINE == x86_64 ]] && platforms+=(--platform manylinux2010_x86_64 --platform manylinux1_x86_64)
    platforms+=(--platform any)
    # Note: pip evaluates dependency markers (platform_machine ...) for the build machine, not
    # the target; none of edge-pose's dependencies has one today (the arm64 install test guards).
    echo "numpy==$NUMPY" >"$TMP/constraints.txt"
    echo "$PROG: downloading the wheels for CPython $PY on $MACHINE (numpy $NUMPY)" >&2
    "$PYTHON" -m pip download --disable-pip-version-check --no-input --only-binary=:all: \
        --python-version "$PY" --implementation cp --abi "cp${PY/./}" --abi abi3 --abi none \
        "${platforms[@]}" --constraint "$TMP/constraints.txt" --dest "$dest" "$WHEEL" >&2 ||
        die "pip download failed (see above): no network, or no wheel of a dependency for CPython $PY on $MACHINE with numpy $NUMPY"
    rm -f -- "$dest/$(basename "$WHEEL")" # shipped on its own in /usr/share/edge-pose
    chmod 0644 "$dest"/*.whl
    compgen -G "$dest/numpy-$NUMPY-*.whl" >/dev/null || die "the wheelhouse has no numpy $NUMPY"
}

# The models, checked against the manifest's sha256 by `edge-pose models fetch` (with progress).
bundle_models() {
    local dest=$ROOT/usr/share/edge-pose/models name
    mkdir -p "$dest"
    for name in "${MODELS[@]}"; do
        (cd "$TMP/src" && "$PYTHON" -m edge_pose.cli models fetch "$name" --dir "$dest" >&2) ||
            die "could not fetch the model $name (see above; EDGE_POSE_MODEL_MIRROR=DIR|URL to fetch from a mirror)"
    done
    find "$dest" -type f ! -name '*.tflite' -delete
    chmod 0644 "$dest"/*.tflite
}

if ((OFFLINE)); then
    bundle_wheels
    bundle_models
fi
# The unit as it is, except that its documentation lives where Debian puts documentation.
mkdir -p "$ROOT/usr/lib/systemd/system"
sed 's|^Documentation=.*|Documentation=file:///usr/share/doc/edge-pose/service.md|' \
    "$SCRIPT_DIR/edge-pose.service" >"$ROOT/usr/lib/systemd/system/edge-pose.service"
grep -qx 'ExecStart=/opt/edge-pose/venv/bin/edge-pose run --config /etc/edge-pose/config.toml' \
    "$ROOT/usr/lib/systemd/system/edge-pose.service" ||
    die "deploy/edge-pose.service: ExecStart= no longer runs /opt/edge-pose/venv/bin/edge-pose (the venv postinst makes)"
put "$SCRIPT_DIR/udev/60-edge-pose-coral.rules" /usr/lib/udev/rules.d/60-edge-pose-coral.rules 0644
put "$DEBIAN_DIR/edge-pose.sysusers" /usr/lib/sysusers.d/edge-pose.conf 0644
put "$DEBIAN_DIR/edge-pose.tmpfiles" /usr/lib/tmpfiles.d/edge-pose.conf 0644
put "$SCRIPT_DIR/lib/make-http-password" /usr/lib/edge-pose/make-http-password 0755
put "$CHECKOUT/config/edge-pose.toml" /etc/edge-pose/config.toml 0644
mkdir -p "$ROOT/usr/bin"
ln -s /opt/edge-pose/venv/bin/edge-pose "$ROOT/usr/bin/edge-pose"
put "$DEBIAN_DIR/edge-pose.1" /usr/share/man/man1/edge-pose.1 0644
gzip -9n "$ROOT/usr/share/man/man1/edge-pose.1"
put "$DEBIAN_DIR/copyright" /usr/share/doc/edge-pose/copyright 0644
put "$DEBIAN_DIR/changelog" /usr/share/doc/edge-pose/changelog 0644
gzip -9n "$ROOT/usr/share/doc/edge-pose/changelog" # a native version: changelog.gz
put "$CHECKOUT/docs/service.md" /usr/share/doc/edge-pose/service.md 0644

# --------------------------------------------------------------------------- DEBIAN/
put "$DEBIAN_DIR/conffiles" /DEBIAN/conffiles 0644
for f in postinst prerm postrm; do put "$DEBIAN_DIR/$f" "/DEBIAN/$f" 0755; done
INSTALLED_SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
if ((OFFLINE)); then
    # The wheels are for one CPython: from $PY up to, not including, the next minor version.
    PYTHON_DEPENDS="python3 (>= $PY), python3 (<< ${PY%.*}.$((${PY#*.} + 1)))"
    DEB_ARCH=$ARCH
else
    PYTHON_DEPENDS="python3 (>= 3.11)"
    DEB_ARCH=all
fi
sed -e "s/@VERSION@/$VERSION/" -e "s/@INSTALLED_SIZE@/$INSTALLED_SIZE/" \
    -e "s/@ARCH@/$DEB_ARCH/" -e "s/@PYTHON_DEPENDS@/$PYTHON_DEPENDS/" \
    "$DEBIAN_DIR/control" >"$ROOT/DEBIAN/control"
if ((OFFLINE)); then
    cat >>"$ROOT/DEBIAN/control" <<EOF
 .
 This is the offline build for CPython $PY on $ARCH: the Python dependencies
 (numpy $NUMPY) and the model(s) ${MODELS[*]} are in the package;
 installing it needs no network.
EOF
fi
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum) >"$ROOT/DEBIAN/md5sums"
find "$ROOT" -type d -exec chmod 0755 {} +

DEB=$OUT/edge-pose_${VERSION}_$DEB_ARCH.deb
# Wheels are zip files already: xz would spend a minute to save 2 %.
COMPRESSION=(-Zxz)
((OFFLINE)) && COMPRESSION=(-Zgzip -z1)
dpkg-deb --root-owner-group "${COMPRESSION[@]}" --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
