"""One node's boot as cloud-init runs its user data (tests/it/aws_bootsim.rs).

    python3 cloud_init_boot.py USER_DATA_FILE RUNS

Run inside a private mount namespace (the test puts /etc, /var/lib and /run
on throwaway layers): this writes the cloud-config's `write_files` with
cloud-init's own module, turns its `runcmd` into the script cloud-init's
own `shellify` writes, and runs that script RUNS times, printing
`exit=STATUS` after each (a second run is a reboot: cloud-init's runcmd
runs once per instance, but the boot script must not rely on that).

Needs Debian's cloud-init (scripts/tools.sh installs it): its Python
modules are what this imports, so run it with the Python they belong to.
"""

import subprocess
import sys

from cloudinit import util
from cloudinit.config import cc_write_files


def main() -> int:
    user_data_file, runs = sys.argv[1], int(sys.argv[2])
    with open(user_data_file, encoding="utf-8") as f:
        text = f.read()
    if not text.startswith("#cloud-config\n"):
        print("user data is not a #cloud-config document", file=sys.stderr)
        return 2
    config = util.load_yaml(text)
    if not isinstance(config, dict):
        print("user data does not parse as a cloud-config mapping", file=sys.stderr)
        return 2
    cc_write_files.write_files("write_files", config.get("write_files", []), "root:root")
    script = "/var/lib/cloud/instance/scripts/runcmd"
    util.write_file(script, util.shellify(config.get("runcmd", [])), 0o700)
    for _ in range(runs):
        status = subprocess.call([script])
        print(f"exit={status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
