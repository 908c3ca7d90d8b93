#!/usr/bin/env bash
# rpi-image-gen customize hook of the edge-pose layer (layer/edge-pose.yaml): runs on the build
# host with the image's root file system as $1, after mmdebstrap installed the layer's packages.
#
#   1. apt-installs the edge-pose .deb inside the root ($IGconf_edgepose_deb). Its postinst makes
#      the venv, pip-installs the dependencies and fetches the model (network needed during the
#      build), and enables the service; it does not start it (no systemd in a chroot). The web
#      view's password it made is removed: each device makes its own at first boot.
#   2. optionally installs mosquitto ($IGconf_edgepose_mosquitto = y).
#   3. optionally places a cloud-init seed on the boot partition ($IGconf_edgepose_seed: a folder
#      with user-data, network-config, meta-data), else only ships the examples.
set -euo pipefail

die() { echo "edge-pose layer: $*" >&2; exit 1; }

[[ $# -eq 1 && -d $1 ]] || die "usage: $0 ROOTFS"
root=$1
deb=${IGconf_edgepose_deb:-}
mosquitto=${IGconf_edgepose_mosquitto:-n}
seed=${IGconf_edgepose_seed:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
examples=$here/../../cloud-init

[[ -n $deb ]] || die "set IGconf_edgepose_deb to the package from 'make deb' (dist/edge-pose_<version>_all.deb, or _arm64.deb with OFFLINE=1)"
[[ -f $deb ]] || die "no such package: $deb (run 'make deb' first)"
case $(basename "$deb") in
    edge-pose_*_all.deb | edge-pose_*_arm64.deb) ;; # the offline build needs no PyPI
    *) die "not an edge-pose package: $deb" ;;
esac

install -m 0644 "$deb" "$root/tmp/"
chroot "$root" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "/tmp/$(basename "$deb")"
rm -f "$root/tmp/$(basename "$deb")"
# The postinst made the web view's password: an image must not carry one, or every card flashed
# from it would share it. Each device makes its own at first boot (cloud-init's user-data, or
# sudo /usr/lib/edge-pose/make-http-password; docs/service.md, "The web view on the LAN").
rm -f "$root/etc/edge-pose/http-password"

case $mosquitto in
    y|yes|1|true)
        chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto
        ;;
    n|no|0|false|'') ;;
    *) die "IGconf_edgepose_mosquitto must be y or n, not '$mosquitto'" ;;
esac

# The documented examples, for editing on a running device or a workstation.
install -d -m 0755 "$root/usr/share/doc/edge-pose/cloud-init"
for name in user-data network-config meta-data; do
    install -m 0644 "$examples/$name" "$root/usr/share/doc/edge-pose/cloud-init/$name"
done

if [[ -n $seed ]]; then
    [[ -f $seed/user-data && -f $seed/meta-data ]] \
        || die "IGconf_edgepose_seed=$seed needs at least user-data and meta-data"
    if grep -q 'CHANGE-ME' "$seed/user-data"; then
        die "$seed/user-data still has CHANGE-ME placeholders"
    fi
    install -d "$root/boot/firmware"
    for name in user-data network-config meta-data; do
        if [[ -f $seed/$name ]]; then
            install -m 0644 "$seed/$name" "$root/boot/firmware/$name"
        fi
    done
fi
