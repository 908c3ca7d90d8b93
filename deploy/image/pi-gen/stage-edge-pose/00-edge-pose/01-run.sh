#!/bin/bash -e
# pi-gen sub-stage: install edge-pose into the image (runs on the build host; pi-gen provides
# ROOTFS_DIR and on_chroot). Settings come from pi-gen's `config` file:
#   EDGE_POSE_DEB=/abs/path/dist/edge-pose_0.1.0_all.deb   (required; `make deb`, or the
#                   offline build edge-pose_0.1.0_arm64.deb: `make deb OFFLINE=1 ARCH=arm64`)
#   EDGE_POSE_MOSQUITTO=1                                   (optional: a local broker too)
# postinst makes the venv, pip-installs the dependencies and fetches the model (network needed
# during the build) and enables the service; it starts at the first boot of the image. The web
# view's password the postinst made is removed: each device makes its own at first boot.
# The first-boot settings come from cloud-init's user-data on the boot partition
# (deploy/cloud-init/, docs/flashing.md); the examples are shipped in the image.

if [ -z "${EDGE_POSE_DEB}" ] || [ ! -f "${EDGE_POSE_DEB}" ]; then
	echo "edge-pose stage: set EDGE_POSE_DEB in pi-gen's config to the package from 'make deb'" >&2
	exit 1
fi
deb_name=$(basename "${EDGE_POSE_DEB}")
case "${deb_name}" in
	edge-pose_*_all.deb | edge-pose_*_arm64.deb) ;; # the offline build needs no PyPI
	*) echo "edge-pose stage: not an edge-pose package: ${EDGE_POSE_DEB}" >&2; exit 1 ;;
esac

install -m 0644 "${EDGE_POSE_DEB}" "${ROOTFS_DIR}/tmp/${deb_name}"
on_chroot <<CHROOT
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "/tmp/${deb_name}"
rm -f "/tmp/${deb_name}"
CHROOT
# The postinst made the web view's password: an image must not carry one, or every card flashed
# from it would share it. Each device makes its own at first boot (cloud-init's user-data, or
# sudo /usr/lib/edge-pose/make-http-password; docs/service.md, "The web view on the LAN").
rm -f "${ROOTFS_DIR}/etc/edge-pose/http-password"

if [ "${EDGE_POSE_MOSQUITTO:-0}" = "1" ]; then
	on_chroot <<CHROOT
DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto
CHROOT
fi

install -d -m 0755 "${ROOTFS_DIR}/usr/share/doc/edge-pose/cloud-init"
for name in user-data network-config meta-data; do
	install -m 0644 "files/${name}" "${ROOTFS_DIR}/usr/share/doc/edge-pose/cloud-init/${name}"
done
