#!/usr/bin/env bash
# libfewcl.so exports the public API only: every defined dynamic symbol starts with fewcl_
# (hidden visibility + FEWCL_API), and the API's functions are there.
# usage: tests/check_symbols.sh path/to/libfewcl.so
set -euo pipefail
lib=$1
symbols=$(nm -D --defined-only "$lib" | awk '{print $3}')
others=$(grep -v '^fewcl_' <<<"$symbols" || true)
if [ -n "$others" ]; then
  echo "libfewcl.so exports symbols outside the public API:" >&2
  echo "$others" | head -20 >&2
  exit 1
fi
for f in fewcl_version fewcl_context_create fewcl_model_load fewcl_enroll fewcl_classify \
         fewcl_train fewcl_test fewcl_plan; do
  grep -qx "$f" <<<"$symbols" || { echo "libfewcl.so does not export $f" >&2; exit 1; }
done
echo "libfewcl.so: $(wc -l <<<"$symbols") symbols, all fewcl_*"
