#!/usr/bin/env bash
# Runs the README's quick start in a fresh, minimal Debian 12 root, as a new user's machine has
# it: debootstrap's minbase and nothing else, the committed tree copied in (commit first).
#   usage (as root, from anywhere in the checkout):
#     tools/portability/fresh-debian.sh                 both README commands: demo, then tests
#     tools/portability/fresh-debian.sh 'CMD' ['CMD'…]  these commands instead, in order
#   FRESH_KEEP=1 keeps the root afterwards (else it is removed); FRESH_CACHE=path of the cached
#   minbase tarball (default /var/tmp/fewcl-bookworm-minbase.tar, built once in a few minutes).
# Each command's exit status and time are printed; the script exits with the first failure's.
set -uo pipefail
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cache=${FRESH_CACHE:-/var/tmp/fewcl-bookworm-minbase.tar}
commands=("$@")
[ ${#commands[@]} -gt 0 ] || commands=("bash tools/run-demo.sh" "bash tools/run-tests.sh")
[ "$(id -u)" -eq 0 ] || { echo "fresh-debian: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }

if [ ! -f "$cache" ]; then
  command -v debootstrap >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
  # The mirror this machine's apt already uses (deb822 .sources or a classic sources.list).
  mirror=$(grep -rhoE "https?://[^ ]+/debian/?" /etc/apt/sources.list /etc/apt/sources.list.d/ \
    2>/dev/null | grep -v -e snapshot -e security | head -1)
  [ -n "$mirror" ] || { echo "fresh-debian: no Debian mirror found in the apt sources" >&2; exit 1; }
  stage=$(mktemp -d /var/tmp/fewcl-minbase.XXXX)
  echo "fresh-debian: debootstrap bookworm from $mirror (once; log /var/tmp/fewcl-debootstrap.log)"
  debootstrap --variant=minbase bookworm "$stage" "$mirror" >/var/tmp/fewcl-debootstrap.log 2>&1 ||
    { echo "fresh-debian: debootstrap failed, see /var/tmp/fewcl-debootstrap.log" >&2; exit 1; }
  cp /etc/apt/sources.list.d/*.sources "$stage/etc/apt/sources.list.d/" 2>/dev/null || true
  tar -C "$stage" -cf "$cache" . && rm -rf "$stage"
fi

root=$(mktemp -d /var/tmp/fewcl-fresh.XXXX)
tar -C "$root" -xf "$cache"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
mkdir -p "$root/root/fewcl"
git -C "$repo" archive HEAD | tar -x -C "$root/root/fewcl"
echo "fresh-debian: $(git -C "$repo" log -1 --format='%h %s' | cut -c1-80) in $root"
# PoCL reads the CPU topology from /sys; /dev for /dev/null and the like.
mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" && mount --rbind /sys "$root/sys"
cleanup() {
  umount -l "$root/proc" "$root/dev" "$root/sys" 2>/dev/null
  # Never delete through a bind mount that is still there (it would reach the host's /dev).
  if [ "${FRESH_KEEP:-0}" = 1 ] || grep -q " $root/" /proc/mounts; then
    echo "fresh-debian: root kept at $root"
  else
    rm -rf "$root"
  fi
}
trap cleanup EXIT

rc=0
for cmd in "${commands[@]}"; do
  start=$(date +%s)
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
    /bin/bash -lc "cd /root/fewcl && $cmd"
  status=$?
  echo "fresh-debian: '$cmd' exit $status in $(( $(date +%s) - start )) s"
  [ $status -eq 0 ] || { rc=$status; break; }
done
exit $rc
