#!/usr/bin/env bash
# `npm run test:pack`: the npm tarball installs into an empty project on a machine with no
# C++ compiler, cmake, make or ninja on PATH, loads its prebuild without any install script
# having to build, evaluates a few tokens of a fixture model and runs `npx deepmla inspect`.
# Until an embedded model ships, the model is ../shared/fixtures/models/v3-split.q6_0.gguf.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
model="$(cd .. && pwd)/shared/fixtures/models/v3-split.q6_0.gguf"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== pack"
tarball="$(npm pack --silent --pack-destination "$work" 2>/dev/null | tail -1)"
tar -tzf "$work/$tarball" | grep -E 'prebuilds/.*\.node$' || { echo "pack: no prebuild in $tarball"; exit 1; }
echo "$tarball: $(du -h "$work/$tarball" | cut -f1)"

# A PATH of symlinks to everything on the real PATH but compilers and build tools.
mkdir "$work/bin"
IFS=: read -r -a dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  [ -d "$dir" ] || continue
  for tool in "$dir"/*; do
    name="${tool##*/}"
    case "$name" in
      cc | c++ | cpp | gcc* | g++* | clang* | *-gcc* | *-g++* | *-cc | *-c++ | cmake* | ccmake | make | gmake | ninja* | ld | ld.* | as) continue ;;
    esac
    [ -e "$work/bin/$name" ] || ln -s "$tool" "$work/bin/$name"
  done
done
export PATH="$work/bin"
for tool in cc c++ gcc g++ clang clang++ cmake make ninja; do
  if command -v "$tool" >/dev/null; then echo "pack: $tool is still on PATH"; exit 1; fi
done

echo "== install into an empty project (no compiler on PATH)"
mkdir "$work/app"
cd "$work/app"
npm init -y >/dev/null
npm install --no-audit --no-fund --loglevel=error "$work/$tarball"
[ ! -e node_modules/deepmla/build ] || { echo "pack: the install built from source"; exit 1; }

echo "== require and evaluate"
node -e '
  const path = require("path");
  const { loadModel } = require("deepmla");
  const pkg = path.dirname(require.resolve("deepmla/package.json"));
  const addon = require("node-gyp-build").resolve(pkg);
  if (!addon.includes(`${path.sep}prebuilds${path.sep}`)) throw new Error(`loaded ${addon}, not a prebuild`);
  (async () => {
    const model = await loadModel(process.argv[1]);
    const context = await model.createContext({ contextSize: 32, threads: 2 });
    const logits = await context.evaluate([1, 17, 42]);
    if (logits.length !== model.config.nVocab || !logits.every(Number.isFinite)) throw new Error("bad logits");
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    console.log(`${path.relative(pkg, addon)}: ${logits.length} logits, argmax ${best}`);
    await context.dispose();
    model.dispose();
  })().catch((error) => { console.error(error); process.exit(1); });
' "$model"

echo "== npx deepmla inspect"
inspect="$(npx --no-install deepmla inspect "$model")"
head -3 <<<"$inspect"
grep -q 'general.architecture = "deepseek2"' <<<"$inspect" || { echo "pack: inspect printed no architecture"; exit 1; }
echo "== npx deepmla run (the embedded default model, no MODEL given)"
run_err="$work/run.stderr"
continuation="$(npx --no-install deepmla run "Once upon a time" -n 16 --temp 0 2>"$run_err")"
cat "$run_err"
echo "Once upon a time$continuation"
grep -qE '^generation: 16 tokens in .* tokens/s' "$run_err" || { echo "pack: run printed no tokens/s"; exit 1; }
[ "$(grep -oE '[A-Za-z]+' <<<"$continuation" | wc -l)" -ge 4 ] || { echo "pack: run printed no words"; exit 1; }
echo "pack: ok"
