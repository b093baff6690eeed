"""The image list the emulator starts with (MOTO_AMIS_PATH, docs/testing.md).

Usage: emulator-images.py OUT [EXTRA_JSON]

moto's own images (its default list and each region's latest Amazon
images, which MOTO_AMIS_PATH would otherwise replace) plus the
cluster-api images that real AWS publishes and moto does not: those in
scripts/emulator-images.json (the examples' profile), or EXTRA_JSON (a
JSON list, as the tests pass theirs). Writes the list to OUT.
"""

import glob
import gzip
import json
import os
import sys

import moto

base = os.path.join(os.path.dirname(moto.__file__), "ec2", "resources")
images = json.load(gzip.open(os.path.join(base, "amis.json.gz")))
seen = {i["ami_id"] for i in images}
for path in sorted(glob.glob(os.path.join(base, "latest_amis", "*.json.gz"))):
    for image in json.load(gzip.open(path)):
        if image["ami_id"] not in seen:
            seen.add(image["ami_id"])
            images.append(image)
if len(sys.argv) > 2:
    extra = json.loads(sys.argv[2])
else:
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulator-images.json")) as f:
        extra = json.load(f)
images.extend(extra)
with open(sys.argv[1], "w") as f:
    json.dump(images, f)
