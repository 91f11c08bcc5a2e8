#!/usr/bin/env bash
# Checks issue #14's promise: `pip install .` into a venv that already has a different torch 2.x keeps that torch.
#
#   bash scripts/check_keeps_torch.sh                      # a real torch 2.4.1 wheel (PyPI's CUDA build, ~800 MB)
#   bash scripts/check_keeps_torch.sh torch==2.3.1         # any other real torch from the configured index
#   bash scripts/check_keeps_torch.sh stub:2.4.0+cu121     # no torch download: a metadata-only torch distribution
#   bash scripts/check_keeps_torch.sh torch==2.4.1 --install   # also really install geotower, then import both
#
# Steps: a fresh venv in a temp folder; the given torch installed there with --no-deps; then `pip install --dry-run
# --report` of this repository (plain `pip install .`, no constraints file: that is what a user types); it fails when
# torch is in the install set. The stub is an honest stand-in for the question pip answers (is the installed
# torch's version acceptable to every requirement?): pip decides from the installed metadata only. Needs the package
# index (network) for the other dependencies' metadata and the build backend. Exit 0 = torch kept.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
SPEC="${1:-torch==2.4.1}"
INSTALL="${2:-}"
PY=${PYTHON:-python3}
WORK="$(mktemp -d "${TMPDIR:-/tmp}/geotower-keeps-torch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check)

if [[ "$SPEC" == stub:* ]]; then
  VERSION="${SPEC#stub:}"
  "$VPY" - "$WORK" "$VERSION" <<'EOF'
import base64, hashlib, sys, zipfile
work, version = sys.argv[1], sys.argv[2]
info = f"torch-{version}.dist-info"
files = {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n",
         f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: check_keeps_torch\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
def digest(text):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
record = "".join(f"{n},{digest(t)},{len(t.encode())}\n" for n, t in files.items()) + f"{info}/RECORD,,\n"
with zipfile.ZipFile(f"{work}/torch-{version}-py3-none-any.whl", "w") as whl:
    for name, text in {**files, f"{info}/RECORD": record}.items():
        whl.writestr(name, text)
EOF
  "${PIP[@]}" install --quiet --no-deps "$WORK/torch-$VERSION-py3-none-any.whl"
else
  "${PIP[@]}" install --quiet --no-deps ${GEOTOWER_TORCH_INDEX:+--index-url "$GEOTOWER_TORCH_INDEX"} "$SPEC"
fi
BEFORE="$("$VPY" -c 'import importlib.metadata as m; print(m.version("torch"))')"
echo "venv torch before: $BEFORE ($SPEC)"

"${PIP[@]}" install --quiet --dry-run --report "$WORK/report.json" "$REPO"
"$VPY" - "$WORK/report.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
names = sorted(i["metadata"]["name"].lower() for i in report["install"])
print(f"pip install . would install {len(names)} distributions: {' '.join(names)}")
torch = [i["metadata"]["version"] for i in report["install"] if i["metadata"]["name"].lower() == "torch"]
if torch:
    sys.exit(f"FAIL: pip would replace the venv's torch with torch {torch[0]}")
print("OK: torch is not in the install set")
EOF

if [ "$INSTALL" = "--install" ]; then
  "${PIP[@]}" install --quiet "$REPO"
  AFTER="$("$VPY" -c 'import importlib.metadata as m; print(m.version("torch"))')"
  [ "$AFTER" = "$BEFORE" ] || { echo "FAIL: torch $BEFORE became $AFTER" >&2; exit 1; }
  (cd "$WORK" && "$VPY" -c 'import geotower, torch; print(f"installed geotower {geotower.__version__} beside torch {torch.__version__}")')
fi
echo "torch kept: $BEFORE"
