#!/usr/bin/env bash
# libfewcl.so exports the public API only: every defined dynamic symbol starts with fewcl_
# (hidden visibility + FEWCL_API), and the API's functions are there: the key ones, and with
# the headers' folder every function they declare FEWCL_API.
# usage: tests/check_symbols.sh path/to/libfewcl.so [include/fewcl]
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
declared=0
if [ $# -ge 2 ]; then
  # "FEWCL_API <type> fewcl_name(" (the declaration may wrap after the name's parenthesis)
  for f in $(grep -ohE 'FEWCL_API[^(]*\bfewcl_[a-z0-9_]+\(' "$2"/*.h |
               grep -oE 'fewcl_[a-z0-9_]+\($' | tr -d '('); do
    declared=$((declared + 1))
    grep -qx "$f" <<<"$symbols" || { echo "libfewcl.so does not export $f (declared in $2)" >&2; exit 1; }
  done
  [ "$declared" -ge 40 ] || { echo "only $declared FEWCL_API functions found in $2" >&2; exit 1; }
fi
echo "libfewcl.so: $(wc -l <<<"$symbols") symbols, all fewcl_*; $declared declared, all exported"
