#!/usr/bin/env bash
# Build the Debian package edge-pose_<version>_all.deb (docs/packaging.md).
#
#   deploy/build-deb.sh [--out DIR]    default DIR: dist/ of the checkout
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
PYTHON=${PYTHON:-python3}
OUT=$CHECKOUT/dist

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

usage() {
    sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

while (($#)); do
    case $1 in
    -o | --out)
        [[ $# -ge 2 && -n $2 ]] || die "$1 needs a directory"
        OUT=$2
        shift
        ;;
    --out=*) OUT=${1#*=} ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown option: $1 (see $PROG --help)" ;;
    esac
    shift
done

for tool in dpkg-deb gzip tar; do
    command -v "$tool" >/dev/null || die "$tool not found: sudo apt-get install dpkg gzip tar"
done
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip (set PYTHON=/path/to/python3)"

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
tar -C "$CHECKOUT" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
    --exclude='*.egg-info' --exclude=./.pytest_cache --exclude=./.ruff_cache \
    --exclude=__pycache__ --exclude='./models/*.tflite' --exclude='./models/*.part' \
    -cf - . | tar -C "$TMP/src" -xf -
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
sed -e "s/@VERSION@/$VERSION/" -e "s/@INSTALLED_SIZE@/$INSTALLED_SIZE/" \
    "$DEBIAN_DIR/control" >"$ROOT/DEBIAN/control"
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum) >"$ROOT/DEBIAN/md5sums"
find "$ROOT" -type d -exec chmod 0755 {} +

DEB=$OUT/edge-pose_${VERSION}_all.deb
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
