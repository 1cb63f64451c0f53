#!/usr/bin/env bash
# Rehearse the GPU check on this CPU machine, in a stand-in for the GPU machine's Python:
# its interpreter version (3.12), its jax / jaxlib / numpy versions, only packages from its list
# (benchmarks/gpu_box_packages.txt), and the carried wheels installed with the device command
# of README "GPU". Catches what the CI smoke run cannot: a newer JAX or NumPy breaking the check.
#
#   make gpu-wheels && benchmarks/gpu_rehearsal.sh PYTHON3.12 [OUT]
#
# Set PARITY=1 to also run `pytest -m gpu` forced onto CPU JAX (Hopper and HalfCheetah; about
# 6 minutes on 2 cores).
set -euo pipefail
python312=${1:?usage: benchmarks/gpu_rehearsal.sh PYTHON3.12 [OUT]}
out=${2:-/tmp/gpu_rehearsal}
root=$(cd "$(dirname "$0")/.." && pwd)
venv=/tmp/gpu_rehearsal_venv
site=/tmp/gpu_rehearsal_site
# The GPU machine's versions (device tool's KINDS.md, pip list of 2026-11) and the packages from
# its list that the check or the carried wheels import.
box_packages=(
  jax==0.11.2 jaxlib==0.11.2 numpy==2.5.2 flax optax scipy h5py matplotlib tqdm pandas
  pytest pytest-xdist imageio cloudpickle typer absl-py "etils[epath]" packaging
)

cd "$root"
ls .whl/*.whl >/dev/null 2>&1 || { echo "gpu_rehearsal: no .whl/; run make gpu-wheels first" >&2; exit 1; }
"$python312" -c 'import sys; assert sys.version_info[:2] == (3, 12), sys.version' ||
  { echo "gpu_rehearsal: $python312 is not Python 3.12, as the GPU machine's is" >&2; exit 1; }
[ -x "$venv/bin/python" ] || "$python312" -m venv "$venv"
"$venv/bin/python" -m pip install -q "${box_packages[@]}"
rm -rf "$site" "$out"
"$venv/bin/python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$site" .whl/*.whl
export PYTHONPATH=$site:$root
"$venv/bin/python" -c 'import jax, numpy; print("jax", jax.__version__, "numpy", numpy.__version__)'
PYTHONUNBUFFERED=1 "$venv/bin/python" benchmarks/gpu_check.py --smoke --out "$out"
if [ "${PARITY:-0}" = 1 ]; then
  skip='jax.default_backend() != "gpu"'
  grep -qF "$skip" tests/test_envs_mjx.py ||
    { echo "gpu_rehearsal: tests/test_envs_mjx.py's gpu skip changed; update PARITY's sed" >&2; exit 1; }
  tests=$(mktemp -d)
  sed "s/$skip/False/" tests/test_envs_mjx.py >"$tests/test_envs_mjx.py"
  cp tests/conftest.py "$tests/"
  "$venv/bin/python" -m pytest -m gpu "$tests/test_envs_mjx.py" -v -p no:cacheprovider \
    -k "Hopper or HalfCheetah" --rootdir "$root" -c "$root/pyproject.toml"
fi
