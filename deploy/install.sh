#!/usr/bin/env bash
# edge-pose installer for Raspberry Pi OS (Debian) Bookworm and Trixie, arm64.
#
#   sudo deploy/install.sh [--with-mosquitto]          install or upgrade, enable and start
#   sudo deploy/install.sh --web-lan                   ... and serve the web view to the LAN
#   sudo deploy/install.sh --uninstall [--purge]       remove (keeps config and models without --purge)
#   deploy/install.sh --root DIR                       lay the files down under DIR only (CI, images)
#   deploy/install.sh --help                           every option
#
# What it does, in order (docs/service.md explains each step): apt packages; the system user
# "edge-pose" and the groups video, plugdev, apex; a venv with --system-site-packages in
# /opt/edge-pose/venv and the package in it; /etc/edge-pose/config.toml (never overwritten);
# the web view's password /etc/edge-pose/http-password (made once; with --web-lan the config
# serves the page to the LAN with it); the model in /var/lib/edge-pose/models, fetched and
# verified; the Coral udev rules; the systemd unit, enabled and started; then `edge-pose status`. Running it again changes nothing that is
# already right (the package is reinstalled from the same source, and the service is restarted
# only when the package or the unit changed).
set -euo pipefail

readonly PROG="install.sh"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
CHECKOUT="$(dirname "$SCRIPT_DIR")"
readonly CHECKOUT
# shellcheck source=SCRIPTDIR/lib/copy-source.sh
. "$SCRIPT_DIR/lib/copy-source.sh"

# --------------------------------------------------------------------------- where things go
readonly SERVICE=edge-pose
readonly SERVICE_USER=edge-pose
readonly PREFIX=/opt/edge-pose
readonly VENV=$PREFIX/venv
readonly DOC_DIR=$PREFIX/doc
readonly CONF_DIR=/etc/edge-pose
readonly CONF_FILE=$CONF_DIR/config.toml
readonly HTTP_PASSWORD=$CONF_DIR/http-password
readonly STATE_DIR=/var/lib/edge-pose
readonly MODEL_DIR=$STATE_DIR/models
readonly UNIT_FILE=/etc/systemd/system/$SERVICE.service
readonly DROPIN_DIR=/etc/systemd/system/$SERVICE.service.d
readonly UDEV_FILE=/etc/udev/rules.d/60-edge-pose-coral.rules
readonly CREDSTORE=/etc/credstore
readonly CRED_FILE=$CREDSTORE/edge-pose.mqtt-password
readonly BIN_LINK=/usr/local/bin/edge-pose
readonly GROUPS_NEEDED=(video plugdev apex)
readonly APT_PACKAGES=(python3-venv python3-systemd python3-picamera2)
readonly SUPPORTED_RELEASES="bookworm trixie"
readonly DEFAULT_MODEL=movenet_lightning_int8
# Tests point this at a fake file to check the release check (always with --dry-run).
readonly OS_RELEASE=${EDGE_POSE_OS_RELEASE:-/etc/os-release}

# --------------------------------------------------------------------------- options
ROOT=""
DRY_RUN=0
ACTION=install
PURGE=0
WITH_MOSQUITTO=0
START=1
FORCE=0
FETCH_MODEL=1
WHEEL=""
SOURCE=""
PASSWORD_FILE=""
WEB_LAN=0
MODELS=()
PYTHON="${PYTHON:-/usr/bin/python3}"

usage() {
    cat <<EOF
Usage: sudo $PROG [OPTIONS]

Install (or upgrade) edge-pose as a systemd service on Raspberry Pi OS Bookworm or Trixie (arm64).

Options:
  --with-mosquitto        also install the Mosquitto MQTT broker (and its clients) from apt
  --wheel FILE            install this wheel instead of the checkout the script lives in
  --source DIR            install from this source tree instead of the checkout
  --model NAME            fetch this catalog model (repeatable); default: model.name of the config
  --no-model              do not fetch a model
  --mqtt-password-file F  store the MQTT password from file F as a systemd credential
                          ($CRED_FILE, root-only); then set mqtt.username and
                          mqtt.password_file = "mqtt-password" in $CONF_FILE
  --web-lan               serve the web view to the LAN (http.bind = 0.0.0.0) behind the
                          password in $HTTP_PASSWORD (user edge-pose;
                          made at the first install, read it with sudo cat); without it the
                          page is for this machine only (127.0.0.1)
  --no-start              enable the service but do not start it (and skip the status check)
  --uninstall             stop and disable the service; remove the unit, udev rules, venv
                          (config, models and the user are kept)
  --purge                 with --uninstall: also remove config (and the web view's password),
                          models, credential and user
  --root DIR              staging mode: lay the files down under DIR without touching the
                          running system (no apt, useradd, chown, systemctl, udevadm: those are
                          printed instead). The venv under DIR works only in place (CI checks).
  --dry-run               print what would be done, change nothing
  --force                 skip the OS release and architecture check
  -h, --help              this help

Environment:
  PYTHON=/usr/bin/python3        interpreter the venv is created from (the system Python, so the
                                 venv sees python3-picamera2 and python3-systemd from apt)
  EDGE_POSE_MODEL_MIRROR=DIR|URL  tried first when fetching the model (offline installs)
  PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR  pip options pass through: offline install from wheels in DIR
EOF
}

# --------------------------------------------------------------------------- helpers
say() { printf '%s: %s\n' "$SERVICE" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}
usage_error() {
    printf '%s: error: %s (see %s --help)\n' "$PROG" "$*" "$PROG" >&2
    exit 2
}

# A path on the target system (under --root DIR when staging).
t() { printf '%s%s' "$ROOT" "$1"; }

quote() {
    local out="" arg
    for arg in "$@"; do out+=" $(printf '%q' "$arg")"; done
    printf '%s' "${out# }"
}

# Change a file under the target root: skipped (printed) with --dry-run.
run() {
    if ((DRY_RUN)); then
        say "would run: $(quote "$@")"
    else
        "$@"
    fi
}

# Touch the running system (packages, users, services, devices): printed instead with --root.
sys_run() {
    if ((DRY_RUN)) || [[ -n $ROOT ]]; then
        say "would run: $(quote "$@")"
    else
        "$@"
    fi
}

# chown on the running system only (staged files stay owned by the caller).
own() {
    sys_run chown "$@"
}

systemd_running() { [[ -z $ROOT && -d /run/systemd/system ]]; }

# install_file SRC DEST MODE: copy when missing or different. Returns 0 if it changed DEST.
install_file() {
    local src=$1 dest=$2 mode=$3
    if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
        if [[ $(stat -c '%a' "$dest") != "${mode#0}" ]]; then
            run chmod "$mode" "$dest"
            return 0
        fi
        return 1
    fi
    run install -D -m "$mode" "$src" "$dest"
    ((DRY_RUN)) || say "installed ${dest#"$ROOT"}"
    return 0
}

# Checksum of what is installed in the venv: the package's files and every distribution's
# metadata (names and versions). Used to restart the service only when something changed.
venv_fingerprint() {
    local venv
    venv=$(t "$VENV")
    [[ -d $venv/lib ]] || {
        echo none
        return
    }
    find "$venv/lib" -type f \( -path '*/edge_pose/*.py' -o -path '*.dist-info/METADATA' \) \
        -print0 | sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1
}

# --------------------------------------------------------------------------- checks
parse_args() {
    while (($#)); do
        case $1 in
        --root)
            [[ $# -ge 2 && -n $2 ]] || usage_error "--root needs a directory"
            ROOT=$2
            shift
            ;;
        --root=*) ROOT=${1#*=} ;;
        --wheel)
            [[ $# -ge 2 ]] || usage_error "--wheel needs a file"
            WHEEL=$2
            shift
            ;;
        --wheel=*) WHEEL=${1#*=} ;;
        --source)
            [[ $# -ge 2 ]] || usage_error "--source needs a directory"
            SOURCE=$2
            shift
            ;;
        --source=*) SOURCE=${1#*=} ;;
        --model)
            [[ $# -ge 2 ]] || usage_error "--model needs a name"
            MODELS+=("$2")
            shift
            ;;
        --model=*) MODELS+=("${1#*=}") ;;
        --mqtt-password-file)
            [[ $# -ge 2 ]] || usage_error "--mqtt-password-file needs a file"
            PASSWORD_FILE=$2
            shift
            ;;
        --mqtt-password-file=*) PASSWORD_FILE=${1#*=} ;;
        --no-model) FETCH_MODEL=0 ;;
        --with-mosquitto) WITH_MOSQUITTO=1 ;;
        --web-lan) WEB_LAN=1 ;;
        --no-start) START=0 ;;
        --uninstall) ACTION=uninstall ;;
        --purge) PURGE=1 ;;
        --dry-run) DRY_RUN=1 ;;
        --force) FORCE=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) usage_error "unknown option: $1" ;;
        esac
        shift
    done
    if ((PURGE)) && [[ $ACTION != uninstall ]]; then
        usage_error "--purge only goes with --uninstall"
    fi
    if [[ -n $WHEEL && -n $SOURCE ]]; then
        usage_error "give --wheel or --source, not both"
    fi
    if [[ -n $ROOT ]]; then
        [[ $ROOT == / ]] && usage_error "--root / is the running system: leave --root out"
        [[ $ROOT == /* ]] || ROOT=$PWD/$ROOT
        ROOT=${ROOT%/}
        if ((!DRY_RUN)); then
            mkdir -p -- "$ROOT" 2>/dev/null || die "cannot create the staging root $ROOT"
        fi
    fi
    if [[ -n $WHEEL ]]; then
        [[ -f $WHEEL ]] || die "wheel not found: $WHEEL"
        WHEEL=$(cd -- "$(dirname -- "$WHEEL")" && pwd)/$(basename -- "$WHEEL")
    fi
    if [[ -n $SOURCE ]]; then
        [[ -d $SOURCE ]] || die "source directory not found: $SOURCE"
        SOURCE=$(cd -- "$SOURCE" && pwd)
    elif [[ -z $WHEEL ]]; then
        SOURCE=$CHECKOUT
    fi
    if [[ -n $SOURCE && ! -f $SOURCE/setup.cfg && ! -f $SOURCE/pyproject.toml ]]; then
        die "$SOURCE is not an edge-pose source tree (no setup.cfg or pyproject.toml): give --wheel FILE or --source DIR"
    fi
    if [[ -n $PASSWORD_FILE && ! -r $PASSWORD_FILE ]]; then
        die "MQTT password file not readable: $PASSWORD_FILE"
    fi
}

check_privileges() {
    if [[ -z $ROOT ]] && ((!DRY_RUN)) && ((EUID != 0)); then
        die "must run as root: $(quote sudo "$0" "$@") (or --root DIR to stage files, --dry-run to look)"
    fi
}

check_os() {
    [[ -n $ROOT ]] && return 0 # staging works anywhere (CI)
    ((FORCE)) && return 0
    local id="" codename="" pretty="" arch
    if [[ -r $OS_RELEASE ]]; then
        # shellcheck disable=SC1090 # a system file, read for its variables
        id=$(. "$OS_RELEASE" && echo "${ID:-}")
        # shellcheck disable=SC1090
        codename=$(. "$OS_RELEASE" && echo "${VERSION_CODENAME:-}")
        # shellcheck disable=SC1090
        pretty=$(. "$OS_RELEASE" && echo "${PRETTY_NAME:-}")
    fi
    case " $SUPPORTED_RELEASES " in
    *" $codename "*) ;;
    *) die "unsupported OS release: ${pretty:-unknown} (need Raspberry Pi OS or Debian bookworm or trixie; --force to try anyway)" ;;
    esac
    [[ $id == debian || $id == raspbian ]] ||
        die "unsupported OS: ${pretty} (need Raspberry Pi OS or Debian; --force to try anyway)"
    arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
    case $arch in
    arm64 | aarch64) ;;
    amd64 | x86_64) say "note: $arch is fine for testing; the camera and Coral paths are for the Pi" ;;
    *) die "unsupported architecture $arch: edge-pose needs a 64-bit (arm64) Raspberry Pi OS (LiteRT has no 32-bit ARM wheels)" ;;
    esac
}

check_python() {
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=/path/to/python3)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'); edge-pose needs >= 3.11 (Bookworm has 3.11, Trixie 3.13)"
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
        die "$PYTHON cannot create venvs: apt-get install python3-venv"
}

# --------------------------------------------------------------------------- install steps
# apt_candidate PKG: the version apt would install ("" when the package is unknown).
apt_candidate() {
    local c
    c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
    [[ $c == "(none)" ]] && c=""
    printf '%s' "$c"
}

step_apt() {
    local pkgs=("${APT_PACKAGES[@]}") missing=() keep=() p
    ((WITH_MOSQUITTO)) && pkgs+=(mosquitto mosquitto-clients)
    if [[ -n $ROOT ]]; then
        sys_run apt-get install -y --no-install-recommends "${pkgs[@]}"
        return
    fi
    for p in "${pkgs[@]}"; do
        if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
            missing+=("$p")
        fi
    done
    # python3-picamera2 comes from the Raspberry Pi archive; plain Debian does not have it. When it
    # is all that is missing and apt does not know it, there is nothing to update or install.
    if [[ ${missing[*]} == python3-picamera2 && -z $(apt_candidate python3-picamera2) ]]; then
        missing=()
        warn "python3-picamera2 is not available (not Raspberry Pi OS?): the Pi camera will not work, v4l2 and file sources will"
    fi
    if ((${#missing[@]} == 0)); then
        say "apt packages: nothing to install"
        return
    fi
    say "installing apt packages: ${missing[*]}"
    run apt-get update -qq || die "apt-get update failed (no network? check the connection and /etc/apt/sources.list*)"
    for p in "${missing[@]}"; do
        if ((!DRY_RUN)) && [[ -z $(apt_candidate "$p") ]]; then
            [[ $p == python3-picamera2 ]] ||
                die "apt package $p is not available (is this Raspberry Pi OS or Debian ${SUPPORTED_RELEASES// / or }?)"
            warn "python3-picamera2 is not available (not Raspberry Pi OS?): the Pi camera will not work, v4l2 and file sources will"
            continue
        fi
        keep+=("$p")
    done
    ((${#keep[@]})) || return 0
    DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq -o Dpkg::Use-Pty=0 \
        --no-install-recommends "${keep[@]}" ||
        die "apt-get install ${keep[*]} failed (no network? see the messages above)"
}

step_user() {
    local g groups_csv
    groups_csv=$(
        IFS=,
        echo "${GROUPS_NEEDED[*]}"
    )
    if [[ -n $ROOT ]]; then
        say "would run: groupadd --system GROUP, for each of ${GROUPS_NEEDED[*]} $SERVICE_USER that is missing"
        say "would run: useradd --system --gid $SERVICE_USER --groups $groups_csv --home-dir $STATE_DIR --no-create-home --shell /usr/sbin/nologin $SERVICE_USER (when missing)"
        return
    fi
    for g in "${GROUPS_NEEDED[@]}" "$SERVICE_USER"; do
        # systemd refuses to start a unit whose SupplementaryGroups= names a missing group;
        # "apex" only exists once Coral's gasket driver package made it.
        getent group "$g" >/dev/null || sys_run groupadd --system "$g"
    done
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
        sys_run useradd --system --gid "$SERVICE_USER" --groups "$groups_csv" \
            --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
            --comment "edge-pose service" "$SERVICE_USER"
        return
    fi
    for g in "${GROUPS_NEEDED[@]}"; do
        if ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$g"; then
            sys_run usermod -a -G "$g" "$SERVICE_USER"
        fi
    done
}

step_dirs() {
    local d
    for d in "$STATE_DIR" "$MODEL_DIR"; do
        # The service user owns these: a link there would have root chmod/chown its target.
        [[ ! -L $(t "$d") ]] || die "$d is a symbolic link, not a folder: remove it, then run $PROG again"
    done
    for d in "$PREFIX" "$CONF_DIR" "$STATE_DIR" "$MODEL_DIR" "$(dirname "$UNIT_FILE")" \
        "$(dirname "$UDEV_FILE")" "$(dirname "$BIN_LINK")"; do
        [[ -d $(t "$d") ]] || run mkdir -p "$(t "$d")"
    done
    run chmod 0750 "$(t "$STATE_DIR")" "$(t "$MODEL_DIR")"
    if [[ -z $ROOT ]]; then
        own "$SERVICE_USER:$SERVICE_USER" "$(t "$STATE_DIR")" "$(t "$MODEL_DIR")"
    fi
}

step_venv() {
    local venv py want have
    venv=$(t "$VENV")
    py=$venv/bin/python
    want=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [[ -x $py ]] && have=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) &&
        [[ $have == "$want" ]] && grep -qs '^include-system-site-packages = true' "$venv/pyvenv.cfg"; then
        say "venv present: $VENV (Python $have)"
        return
    fi
    if [[ -e $venv ]]; then
        say "recreating the venv $VENV (Python ${have:-broken} -> $want)"
        run rm -rf -- "$venv"
    fi
    say "creating the venv $VENV (Python $want, --system-site-packages for picamera2/systemd from apt)"
    run "$PYTHON" -m venv --system-site-packages "$venv"
}

step_package() {
    local py pip_log target constraints="" sys_numpy
    py=$(t "$VENV")/bin/python
    pip_log=$TMP/pip.log
    if [[ -n $WHEEL ]]; then
        target=$WHEEL
    elif ((DRY_RUN)); then
        target=$SOURCE
    else
        # Build from a copy: pip builds in the source tree, and a root-owned build/ in the
        # user's checkout would be a nuisance.
        target=$TMP/src
        mkdir -p "$target"
        copy_source "$SOURCE" "$target"
    fi
    local args=(-m pip install --disable-pip-version-check --no-input --quiet
        --root-user-action=ignore)
    # Keep numpy at the version apt installed for python3-picamera2: its compiled companions
    # (python3-simplejpeg, ...) are built against it, and a second numpy from PyPI (e.g. 2.x
    # on Bookworm's 1.24) breaks `import picamera2`. pip then picks compatible OpenCV wheels.
    sys_numpy=$("$PYTHON" -s -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)
    if [[ -n $sys_numpy ]]; then
        constraints=$TMP/constraints.txt
        printf 'numpy==%s\n' "$sys_numpy" >"$constraints"
        args+=(--constraint "$constraints")
        say "keeping the system numpy $sys_numpy (python3-numpy) for picamera2"
    fi
    say "installing edge-pose into $VENV from ${WHEEL:-$SOURCE} (pip; a few minutes on a Pi Zero)"
    if ((DRY_RUN)); then
        say "would run: $(quote "$py" "${args[@]}" "$target")"
        return
    fi
    if ! "$py" "${args[@]}" "$target" >"$pip_log" 2>&1; then
        tail -n 25 "$pip_log" >&2
        if grep -Eqi 'NewConnectionError|Failed to establish|Temporary failure in name resolution|Network is unreachable|No matching distribution|Could not find a version' "$pip_log"; then
            die "pip could not download edge-pose's dependencies (no network?). Offline: put the wheels in a folder and run PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels $0 --wheel edge_pose-*.whl"
        fi
        die "pip install failed (see above; full log: $pip_log)"
    fi
    [[ -x $(t "$VENV")/bin/edge-pose ]] || die "pip installed no edge-pose command into $VENV/bin"
}

step_links() {
    local link target
    link=$(t "$BIN_LINK")
    target=$VENV/bin/edge-pose
    if [[ $(readlink "$link" 2>/dev/null) != "$target" ]]; then
        if [[ -e $link && ! -L $link ]]; then
            warn "$BIN_LINK exists and is not our link: left alone (use $target)"
        else
            run ln -sfn "$target" "$link"
            ((DRY_RUN)) || say "linked $BIN_LINK -> $target"
        fi
    fi
    if [[ -f $CHECKOUT/docs/service.md ]]; then
        install_file "$CHECKOUT/docs/service.md" "$(t "$DOC_DIR")/service.md" 0644 || true
    fi
}

step_config() {
    local conf template
    conf=$(t "$CONF_FILE")
    if [[ -e $conf ]]; then
        say "kept the existing $CONF_FILE"
        return
    fi
    template=""
    if [[ -n $SOURCE && -f $SOURCE/config/edge-pose.toml ]]; then
        template=$SOURCE/config/edge-pose.toml
    elif [[ -f $(t "$VENV")/share/edge-pose/config/edge-pose.toml ]]; then
        template=$(t "$VENV")/share/edge-pose/config/edge-pose.toml
    elif [[ -f $CHECKOUT/config/edge-pose.toml ]]; then
        template=$CHECKOUT/config/edge-pose.toml
    else
        die "no default config found (config/edge-pose.toml) to install as $CONF_FILE"
    fi
    # World-readable like most of /etc: it holds no secrets (passwords live in credentials or
    # password files), and `edge-pose status`/`validate` then work for every local user.
    run install -m 0644 "$template" "$conf"
    ((DRY_RUN)) || say "installed $CONF_FILE (from $template)"
}

# The configured model's catalog name(s), one per line; nothing for a custom .tflite path.
configured_models() {
    local name
    if ((${#MODELS[@]})); then
        printf '%s\n' "${MODELS[@]}"
        return
    fi
    name=$("$(t "$VENV")/bin/python" - "$(t "$CONF_FILE")" <<'EOF'
import sys, tomllib
try:
    with open(sys.argv[1], "rb") as f:
        print(tomllib.load(f).get("model", {}).get("name", ""))
except (OSError, tomllib.TOMLDecodeError):
    print("")
EOF
)
    name=${name:-$DEFAULT_MODEL}
    if [[ $name == */* || $name == *.tflite ]]; then
        say "model.name is a file ($name): nothing to fetch, install it yourself"
        return
    fi
    printf '%s\n' "$name"
}

# Run a command in the model folder as the service user (as the Debian postinst does): the
# folder is that user's, so root must not write there and follow a link or file planted in it.
# Staged (--root), the tree is the caller's and the command runs as the caller.
as_service_user() {
    local cmd=("$@")
    [[ -n $ROOT ]] || cmd=(runuser -u "$SERVICE_USER" -- "$@")
    if ((DRY_RUN)); then
        say "would run: $(quote "${cmd[@]}")"
    else
        (cd "$(t "$STATE_DIR")" && "${cmd[@]}")
    fi
}

step_model() {
    ((FETCH_MODEL)) || {
        say "not fetching a model (--no-model)"
        return
    }
    local names=() dir bin
    bin=$(t "$VENV")/bin/edge-pose
    dir=$(t "$MODEL_DIR")
    if ((DRY_RUN)); then # no NAME: the config's model.name
        as_service_user "$bin" models fetch "${MODELS[@]}" --dir "$dir"
        return
    fi
    mapfile -t names < <(configured_models)
    ((${#names[@]})) || return 0
    say "fetching the model ${names[*]} into $MODEL_DIR"
    as_service_user "$bin" models fetch "${names[@]}" --dir "$dir" ||
        die "could not fetch the model ${names[*]} (no network? put the .tflite files in a folder $SERVICE_USER may read and set EDGE_POSE_MODEL_MIRROR=/that/folder, or use the offline package: docs/packaging.md)"
    as_service_user "$bin" models verify "${names[@]}" --dir "$dir" ||
        die "model check failed in $MODEL_DIR (see above)"
    if compgen -G '/dev/apex_*' >/dev/null || grep -qsx -e 1a6e -e 18d1 /sys/bus/usb/devices/*/idVendor; then
        say "a Coral may be attached: for backend auto/edgetpu also run: sudo runuser -u $SERVICE_USER -- $VENV/bin/edge-pose models fetch ${names[0]}_edgetpu --dir $MODEL_DIR (see edge-pose models list)"
    fi
    return 0
}

step_validate() {
    ((DRY_RUN)) && return 0
    "$(t "$VENV")/bin/edge-pose" validate --config "$(t "$CONF_FILE")" ||
        die "$CONF_FILE is invalid (see above): fix it, then run $PROG again"
}

# The web view's password (Basic auth, user edge-pose), made once by deploy/lib/make-http-password
# (random, 0640 root:edge-pose) and never overwritten: LAN access then needs only the config.
step_http_password() {
    local file
    file=$(t "$HTTP_PASSWORD")
    if [[ -e $file || -L $file ]]; then
        say "kept the existing $HTTP_PASSWORD (the web view's password)"
        return
    fi
    if ((DRY_RUN)); then
        say "would run: $(quote "$SCRIPT_DIR/lib/make-http-password" "$file")"
        return
    fi
    if [[ -n $ROOT ]]; then # staged: the group edge-pose need not exist on this machine
        EDGE_POSE_PASSWORD_GROUP="" PYTHON=$PYTHON "$SCRIPT_DIR/lib/make-http-password" "$file" >/dev/null ||
            die "could not make the web view's password file $file (see above)"
        say "would run: chgrp $SERVICE_USER $HTTP_PASSWORD"
    else
        PYTHON=$PYTHON "$SCRIPT_DIR/lib/make-http-password" "$file" >/dev/null ||
            die "could not make the web view's password file $HTTP_PASSWORD (see above)"
    fi
    say "made $HTTP_PASSWORD (the web view's password, user edge-pose; sudo cat $HTTP_PASSWORD shows it)"
}

# --web-lan: the settings that serve the page to the LAN with that password, those not set
# already, for one `edge-pose config set` (validated, comments kept).
web_lan_settings() {
    "$(t "$VENV")/bin/python" - "$(t "$CONF_FILE")" "$HTTP_PASSWORD" <<'EOF'
import ipaddress, sys, tomllib
try:
    with open(sys.argv[1], "rb") as f:
        http = tomllib.load(f).get("http", {})
except (OSError, tomllib.TOMLDecodeError):
    http = {}
settings = []
if http.get("enabled", True) is not True:
    settings.append("http.enabled=true")
try:
    loopback = ipaddress.ip_address(http.get("bind", "127.0.0.1")).is_loopback
except ValueError:
    loopback = True
if loopback:
    settings.append("http.bind=0.0.0.0")
if not http.get("password_file"):
    settings.append(f"http.password_file={sys.argv[2]}")
print(" ".join(settings))
EOF
}

step_web_lan() {
    local settings=()
    ((WEB_LAN)) || return 0
    if ((DRY_RUN)) || [[ -n $ROOT ]]; then
        # The config names the password file by its path on the target, which a staged tree
        # does not have where validation looks: the edit is for the installed system.
        say "would run: $(quote "$VENV/bin/edge-pose" config set --config "$CONF_FILE" http.bind=0.0.0.0 "http.password_file=$HTTP_PASSWORD")"
        return 0
    fi
    local wanted
    wanted=$(web_lan_settings) || die "could not read $CONF_FILE for --web-lan (see above)"
    read -r -a settings <<<"$wanted"
    if ((${#settings[@]} == 0)); then
        say "the web view is served to the LAN already (http.bind, http.password_file in $CONF_FILE)"
        return 0
    fi
    "$(t "$VENV")/bin/edge-pose" config set --config "$CONF_FILE" "${settings[@]}" ||
        die "could not turn on LAN access in $CONF_FILE (see above)"
    CHANGED=1
}

# Where the page is, at the end; with --web-lan on a terminal also the password the config
# names (on a terminal only: never into a log).
web_summary() {
    local lines=() url password_file
    if ((DRY_RUN)) || [[ -n $ROOT ]]; then
        return 0
    fi
    mapfile -t lines < <("$VENV/bin/python" - "$CONF_FILE" 2>/dev/null <<'EOF' || true
import sys
from pathlib import Path
from edge_pose.config import load_config
from edge_pose.web.urls import page_url
http = load_config(Path(sys.argv[1])).http
print(page_url(http) or "")
print(http.password_file)
EOF
)
    url=${lines[0]:-} password_file=${lines[1]:-$HTTP_PASSWORD}
    if [[ -z $url ]]; then
        say "web view: off (http.enabled = false in $CONF_FILE)"
    elif ((WEB_LAN)); then
        say "web view: $url (user edge-pose, the password in $password_file: sudo cat $password_file)"
        if [[ -t 0 && -t 1 && $password_file == /* && -r $password_file ]]; then
            say "its password (on this terminal only): $(cat "$password_file")"
        fi
    else
        say "web view: $url (this machine only; for the LAN: sudo $0 --web-lan)"
    fi
}

step_credential() {
    [[ -n $PASSWORD_FILE ]] || return 0
    [[ -d $(t "$CREDSTORE") ]] || run install -d -m 0700 "$(t "$CREDSTORE")"
    if install_file "$PASSWORD_FILE" "$(t "$CRED_FILE")" 0600; then
        CHANGED=1
        [[ -z $ROOT ]] && own root:root "$(t "$CRED_FILE")"
    fi
    say "MQTT password stored as credential; config: mqtt.username = \"...\", mqtt.password_file = \"mqtt-password\""
}

step_udev() {
    if install_file "$SCRIPT_DIR/udev/60-edge-pose-coral.rules" "$(t "$UDEV_FILE")" 0644; then
        if [[ -n $ROOT ]] || [[ -S /run/udev/control ]]; then
            sys_run udevadm control --reload
            sys_run udevadm trigger --action=change --subsystem-match=usb --subsystem-match=apex
        else
            say "udev is not running: the rules apply from the next boot"
        fi
    fi
}

step_unit() {
    if install_file "$SCRIPT_DIR/$SERVICE.service" "$(t "$UNIT_FILE")" 0644; then
        CHANGED=1
        if [[ -n $ROOT ]] || systemd_running; then
            sys_run systemctl daemon-reload
        fi
    fi
    if [[ -n $ROOT ]] || [[ -d /run/systemd/system ]] || command -v systemctl >/dev/null; then
        # `enable` works without a running systemd too (image builds in a chroot).
        sys_run systemctl enable --quiet "$SERVICE.service"
    fi
}

step_start() {
    if ((!START)); then
        say "not starting (--no-start): sudo systemctl start $SERVICE"
        return
    fi
    if [[ -n $ROOT ]] || ((DRY_RUN)); then
        sys_run systemctl start "$SERVICE.service"
        sys_run "$VENV/bin/edge-pose" status
        return
    fi
    if ! systemd_running; then
        say "systemd is not running here (chroot/container?): the service starts at the next boot"
        return
    fi
    START_TS=$(date +%s)
    if systemctl is-active --quiet "$SERVICE.service"; then
        if ((CHANGED)); then
            say "restarting $SERVICE (package or unit changed)"
            systemctl restart "$SERVICE.service" || start_failed
        else
            say "$SERVICE is running; nothing changed"
        fi
    else
        say "starting $SERVICE (waits until the first frame was inferred)"
        systemctl reset-failed "$SERVICE.service" 2>/dev/null || true
        systemctl start "$SERVICE.service" || start_failed
    fi
    local rc=0
    "$VENV/bin/edge-pose" status || rc=$?
    case $rc in
    0) say "installed and healthy" ;;
    1) warn "$SERVICE runs but reports degraded (see above; e.g. no MQTT broker: --with-mosquitto or set mqtt.host)" ;;
    2) systemctl --no-pager status "$SERVICE.service" || true ;; # an edge-pose without `status`
    *) warn "$SERVICE is not running: journalctl -u $SERVICE -e" ;;
    esac
}

start_failed() {
    journalctl -u "$SERVICE.service" --since "@$START_TS" -n 40 --no-pager >&2 || true
    die "$SERVICE did not start (journal above): fix the cause, then: sudo systemctl restart $SERVICE"
}

do_install() {
    check_os
    step_apt
    check_python
    step_user
    step_dirs
    step_venv
    local before after
    before=$(venv_fingerprint)
    step_package
    after=$(venv_fingerprint)
    [[ $before == "$after" ]] || CHANGED=1
    step_links
    step_config
    step_model
    step_http_password # before validating: a config may name it
    step_validate
    step_web_lan
    step_credential
    step_udev
    step_unit
    step_start
    web_summary
    if [[ -n $ROOT ]] && ((!DRY_RUN)); then say "staged under $ROOT"; fi
    return 0
}

# --------------------------------------------------------------------------- uninstall
remove() {
    local p
    for p in "$@"; do
        if [[ -e $p || -L $p ]]; then
            run rm -rf -- "$p"
            ((DRY_RUN)) || say "removed ${p#"$ROOT"}"
        fi
    done
}

do_uninstall() {
    if [[ -n $ROOT ]] || ((DRY_RUN)); then
        sys_run systemctl disable --now "$SERVICE.service"
    elif command -v systemctl >/dev/null && [[ -e $UNIT_FILE ]]; then
        if systemd_running; then
            systemctl disable --now --quiet "$SERVICE.service" || true
        else
            systemctl disable --quiet "$SERVICE.service" || true
        fi
    fi
    remove "$(t "$UNIT_FILE")"
    if [[ -n $ROOT ]] || systemd_running; then
        sys_run systemctl daemon-reload
        [[ -n $ROOT ]] || systemctl reset-failed "$SERVICE.service" 2>/dev/null || true
    fi
    if [[ -e $(t "$UDEV_FILE") ]]; then
        remove "$(t "$UDEV_FILE")"
        if [[ -n $ROOT ]] || [[ -S /run/udev/control ]]; then
            sys_run udevadm control --reload
        fi
    fi
    if [[ $(readlink "$(t "$BIN_LINK")" 2>/dev/null) == "$VENV/bin/edge-pose" ]]; then
        remove "$(t "$BIN_LINK")"
    fi
    remove "$(t "$PREFIX")"
    if ((PURGE)); then
        remove "$(t "$DROPIN_DIR")" "$(t "$CONF_DIR")" "$(t "$STATE_DIR")" "$(t "$CRED_FILE")"
        if [[ -n $ROOT ]] || getent passwd "$SERVICE_USER" >/dev/null; then
            sys_run userdel "$SERVICE_USER"
        fi
        if [[ -n $ROOT ]] || getent group "$SERVICE_USER" >/dev/null; then
            sys_run groupdel "$SERVICE_USER"
        fi
        say "purged (the groups video, plugdev and apex are kept: other software uses them)"
    else
        say "kept $CONF_DIR (config, the web view's password), $STATE_DIR (models), $CRED_FILE and the user $SERVICE_USER (--purge removes them)"
    fi
}

# --------------------------------------------------------------------------- main
CHANGED=0
START_TS=0
TMP=""
cleanup() {
    if [[ -n $TMP ]]; then rm -rf -- "$TMP"; fi
}

main() {
    parse_args "$@"
    check_privileges "$@"
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/edge-pose-install.XXXXXX")
    trap cleanup EXIT
    umask 022
    if [[ $ACTION == uninstall ]]; then
        do_uninstall
    else
        do_install
    fi
}

main "$@"
