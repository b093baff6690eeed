#!/usr/bin/env bash
# The run as a picture, for docs/run-timeline.png (docs/plan-review.md):
#   scripts/run-timeline.sh [SPEC]     (default: examples/dynamic-cluster.toml)
#
# 1. applies SPEC on the local AWS emulator with `apply --json` and prints
#    `skyplan show` of that run (moto answers at once: NAT gateways are
#    "available" in under a second, so its timeline shows skyplan's own
#    time, not AWS's);
# 2. replays the same run's shape in the simulated cloud: one sim_resource
#    per operation of step 1, waiting for exactly what it waited for
#    (`depends_on` of its `apply_start`), each taking the typical time of its
#    AWS kind (TYPICAL below, seconds; AWS does not publish them: they are
#    this project's estimates from applying such clusters, NAT gateways
#    "pending" for one to two minutes), and applies it with `apply --json`;
# 3. renders that run's page and a phone-sized screenshot of it with
#    headless Chromium (scripts/browser.sh) into docs/run-timeline.png.
# Stops the emulator by its PID on the way out.
set -euo pipefail
cd "$(dirname "$0")/.."
spec="${1:-examples/dynamic-cluster.toml}"

scripts/browser.sh install
# The emulator, the binary and a scratch directory ($skyplan, $work).
# shellcheck source=scripts/emulator-session.sh
. scripts/emulator-session.sh

echo "== 1. $spec on the emulator"
"$skyplan" apply "$spec" --state "$work/moto.state.json" --auto-approve --json >"$work/moto-run.jsonl"
"$skyplan" show "$work/moto-run.jsonl"

echo
echo "== 2. the same run's shape in the simulated cloud, with typical AWS durations"
python3 - "$work/moto-run.jsonl" >"$work/replay.toml" <<'PY'
import json, re, sys

# Typical seconds from the call to "ready" (available, running, in service).
TYPICAL = {
    "aws_vpc": 2, "aws_subnet": 2, "aws_internet_gateway": 2, "aws_eip": 1,
    "aws_nat_gateway": 95, "aws_route_table": 2, "aws_route": 1,
    "aws_route_table_association": 1, "aws_security_group": 3,
    "aws_security_group_rule": 1, "aws_elb": 6, "aws_instance": 18,
    "aws_launch_template": 1, "aws_autoscaling_group": 8, "aws_key_pair": 1,
}

def name(address):
    return re.sub(r"[^A-Za-z0-9_-]", "_", address).strip("_")

for line in open(sys.argv[1]):
    event = json.loads(line)
    if event["type"] != "apply_start":
        continue
    address = event["address"]
    seconds = TYPICAL.get(address.split(".")[0], 2)
    print(f"[resource.sim_resource.{name(address)}]")
    print(f"delay_ms = {seconds * 1000}")
    deps = [f'"sim_resource.{name(d["address"])}"' for d in event["hook"]["depends_on"]]
    if deps:
        print(f"depends_on = [{', '.join(deps)}]")
    print()
PY
"$skyplan" apply "$work/replay.toml" --state "$work/replay.state.json" --auto-approve --json >"$work/run.jsonl"
"$skyplan" show "$work/run.jsonl"

echo
echo "== 3. docs/run-timeline.png"
"$skyplan" show "$work/run.jsonl" --format html >"$work/run.html"
"$(scripts/browser.sh path)" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=420,3400 \
  --screenshot="$PWD/docs/run-timeline.png" "file://$work/run.html" 2>/dev/null
echo "wrote docs/run-timeline.png"
