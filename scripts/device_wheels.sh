#!/usr/bin/env bash
# Download into .wheels/ (git-ignored) the wheels the GPU machine's image lacks, for its
# Python, so that scripts/gpu_check.sh can install them there offline (the machine reaches
# no network). Run here, in the repository root, before a device run that carries .wheels:
#
#   scripts/device_wheels.sh                       # the device's Python 3.12 (default)
#   scripts/device_wheels.sh --python-version 3.11
#   scripts/device_wheels.sh --all                 # also what the torch image ships
#
# The H200 image (torch 2.11, Python 3.12; /work/.library/device/KINDS.md) ships numpy,
# scipy, opencv-python-headless, pandas, matplotlib, jinja2, pyyaml, pillow, rich (with
# markdown-it-py, mdurl, pygments), cloudpickle, portalocker, tabulate and tqdm; it lacks
# pydantic (+ pydantic-core, annotated-types, typing-inspection), fvcore (+ iopath, yacs,
# termcolor), ptflops, pycocotools and submitit. --all adds the shipped ones too (an image
# without them; opencv alone is ~50 MB of the 64 MiB a device call may carry).
set -euo pipefail
cd "$(dirname "$0")/.."

PYVER=3.12
DEST=.wheels
ALL=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python-version) PYVER="$2"; shift 2 ;;
    --dest) DEST="$2"; shift 2 ;;
    --all) ALL=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  pydantic pydantic-core annotated-types typing-inspection typing-extensions
  fvcore iopath yacs termcolor
  ptflops
  pycocotools
  submitit
)
SHIPPED=(
  numpy scipy opencv-python-headless pillow pyyaml cloudpickle portalocker tabulate tqdm
  rich markdown-it-py mdurl pygments
)
[[ $ALL == 1 ]] && PACKAGES+=("${SHIPPED[@]}")

mkdir -p "$DEST"
# --no-deps: the list above is the closure (pip download cannot resolve pins across
# platforms it does not run on); pydantic's own pin on pydantic-core is honoured below
PLATFORMS=()
for p in manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64 \
         manylinux_2_34_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
python3 -m pip download --no-deps --only-binary=:all: --dest "$DEST" \
  --python-version "$PYVER" --implementation cp "${PLATFORMS[@]}" pydantic
# the pydantic-core that this pydantic requires
CORE=$(unzip -p "$DEST"/pydantic-[0-9]*.whl '*/METADATA' | sed -n 's/^Requires-Dist: pydantic-core\s*\(==[^ ;]*\).*/\1/p' | head -1)
for pkg in "${PACKAGES[@]}"; do
  spec="$pkg"
  [[ "$pkg" == pydantic ]] && continue
  [[ "$pkg" == pydantic-core && -n "$CORE" ]] && spec="pydantic-core$CORE"
  # fvcore, iopath and ptflops publish sdists only on some versions: allow pure-python sdists
  if ! python3 -m pip download --no-deps --only-binary=:all: --dest "$DEST" \
       --python-version "$PYVER" --implementation cp "${PLATFORMS[@]}" "$spec" -q; then
    echo "no wheel for $spec; building one from its sdist (pure python)" >&2
    python3 -m pip wheel --no-deps --wheel-dir "$DEST" "$spec" -q
  fi
done
ls -1 "$DEST"
du -sh "$DEST"
