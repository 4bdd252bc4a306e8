#!/usr/bin/env bash
# Run once on a machine with a real NVIDIA GPU (the device tool): keeps the real outputs of the tools
# gpuwizard's detection parses, so they can become test fixtures, and runs the wizard's own doctor.
# Usage: OUT=/some/dir bash tools/device-capture.sh   (needs python3 with nvidia-ml-py; pyyaml/rich optional)
set -u
OUT=${OUT:?set OUT}
cap="$OUT/capture"
mkdir -p "$cap"
run() { # run NAME CMD...: stdout+stderr and the exit code into capture/NAME
  local name=$1; shift
  { "$@"; echo "[rc=$?]"; } >"$cap/$name" 2>&1 || true
}
run nvidia-smi.txt nvidia-smi
run nvidia-smi-L.txt nvidia-smi -L
run nvidia-smi-q.txt nvidia-smi -q
run nvidia-smi-query.csv nvidia-smi --query-gpu=index,name,memory.total,uuid,pci.bus_id,driver_version,mig.mode.current --format=csv,noheader,nounits
run nvidia-smi-query-header.csv nvidia-smi --query-gpu=index,name,memory.total,uuid,pci.bus_id,driver_version,mig.mode.current --format=csv
run nvidia-smi-version.txt nvidia-smi --version
run nvcc-version.txt nvcc --version
run lspci-nn.txt lspci -nn
run uname.txt uname -a
run mokutil.txt mokutil --sb-state
run docker-version.txt docker --version
run nvidia-ctk-version.txt nvidia-ctk --version
cp /etc/os-release "$cap/os-release" 2>/dev/null
grep -E '^(nvidia|nouveau)' /proc/modules >"$cap/proc-modules.txt" 2>&1
ls /sys/bus/pci/devices >"$cap/sysfs-pci.txt" 2>&1
for d in /sys/bus/pci/devices/*; do
  [ "$(cat "$d/vendor" 2>/dev/null)" = "0x10de" ] && echo "$d $(cat "$d/vendor") $(cat "$d/device") $(cat "$d/class")"
done >"$cap/sysfs-nvidia.txt" 2>&1
ls /usr/local/ >"$cap/usr-local.txt" 2>&1
cat /usr/local/cuda/version.json >"$cap/cuda-version.json" 2>&1
python3 - >"$cap/nvml.json" 2>&1 <<'PY'
import json, sys, time
sys.path.insert(0, ".")
from gpuwizard.detect import probe_nvml
t = time.perf_counter(); r = probe_nvml(); r["seconds"] = round(time.perf_counter() - t, 4)
print(json.dumps(r, indent=2))
PY
start=$(date +%s.%N)
python3 -m gpuwizard doctor --json >"$OUT/doctor.json" 2>"$cap/doctor.stderr"
echo "doctor rc=$? seconds=$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null)" >>"$cap/doctor.stderr"
python3 -m gpuwizard doctor >"$cap/doctor.txt" 2>&1
tar -C "$OUT" -czf "$OUT/capture.tar.gz" capture && rm -rf "$cap"
cat "$OUT/doctor.json"
