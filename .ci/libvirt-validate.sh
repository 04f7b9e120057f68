#!/usr/bin/env bash
# CI against a real libvirt: Debian's libvirtd and QEMU, started by hand (no
# systemd) on a fake 2-socket, 4-cell sysfs (SLIT 10/12/21, 2M and 1G pages)
# so that libvirt itself sees a NUMA host; then `numasim libvirt validate`
# over a small trace. Guests pinned within this machine's real node 0 are
# also started (KVM where /dev/kvm exists, TCG otherwise). libvirtd is
# stopped by its process id. Based on the notes in shared/libvirt/FINDINGS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${NUMASIM_BIN:-target/release/numasim}
OUT=target/ci-libvirt
rm -rf "$OUT"; mkdir -p "$OUT"
export DEBIAN_FRONTEND=noninteractive
if ! command -v libvirtd >/dev/null || ! command -v qemu-system-x86_64 >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    libvirt-clients libvirt-daemon qemu-system-x86 >/dev/null
fi
# libvirtd's qemu driver looks its build-time user up before reading qemu.conf.
getent group kvm >/dev/null || groupadd --system kvm
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null || useradd --system --no-create-home --home-dir /var/lib/libvirt \
  --shell /usr/sbin/nologin -g libvirt-qemu -G kvm libvirt-qemu
install -m 644 .ci/libvirt-qemu.conf /etc/libvirt/qemu.conf
# The real node 0's CPUs, read before the fake sysfs hides them.
REAL_CPUS=$(cat /sys/devices/system/node/node0/cpulist 2>/dev/null || echo 0)
python3 .ci/mkfakesys.py "$OUT/sys" 2 2 4 2 16
unshare -m --propagation private sh -c "mount --bind $OUT/sys/node /sys/devices/system/node && \
  mount --bind $OUT/sys/cpu /sys/devices/system/cpu && \
  exec env LIBVIRT_LOG_OUTPUTS=3:file:$PWD/$OUT/libvirtd.log /usr/sbin/libvirtd" >"$OUT/libvirtd.out" 2>&1 &
LIBVIRTD=$!
trap 'kill $LIBVIRTD 2>/dev/null; wait $LIBVIRTD 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.2; done
virsh -c qemu:///system version >/dev/null || { cat "$OUT/libvirtd.out" "$OUT/libvirtd.log" || true; exit 1; }
# Read the whole output first: `virsh ... | grep -q` under pipefail fails
# whenever grep exits at its match before virsh has written everything.
caps=$(virsh -c qemu:///system capabilities)
grep -q "<cells num='4'>" <<<"$caps" \
  || { echo "libvirt does not see the fake 4-cell host"; exit 1; }

# 1. Every placement defines and reads back as predicted; those within the real
#    node 0 also start and their vCPU threads' affinity is read back.
"$BIN" libvirt capture --connect qemu:///system -o "$OUT/host.json"
"$BIN" libvirt validate --connect qemu:///system traces/libvirt-validate.csv \
  --flavors traces/libvirt-validate-flavors.csv --start-cpus "$REAL_CPUS" --start-nodes 0 \
  --out "$OUT/validate.csv" | tee "$OUT/validate.txt"
grep -q " started" "$OUT/validate.txt" || { echo "no guest was started"; exit 1; }

# 2. Refusals: starting guests pinned to CPUs this machine lacks must fail with
#    libvirt's own message, exit 1, and leave nothing behind.
set +e
"$BIN" libvirt validate --connect qemu:///system traces/libvirt-validate.csv \
  --flavors traces/libvirt-validate-flavors.csv --limit 3 --start > "$OUT/refused.txt" 2>&1
rc=$?
set -e
cat "$OUT/refused.txt"
[ "$rc" = 1 ] || { echo "expected exit 1 on refused guests, got $rc"; exit 1; }
grep -q "refused" "$OUT/refused.txt" || { echo "no refusal reported"; exit 1; }
left=$(virsh -c qemu:///system list --all --name | grep -c '^numasim-' || true)
[ "$left" = 0 ] || { echo "$left numasim domains left on the host"; exit 1; }
echo "libvirt validation: ok"
