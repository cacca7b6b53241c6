#!/usr/bin/env bash
# The fewcl tool is a client of the public API (issue 13): every file of apps/fewcl/ except the
# developer tools (bench*, episode) includes only the installed headers "fewcl/..." , system
# headers <...> and the tool's own headers (which this script checks the same way), and names
# no internal symbol (fcl_* / FCL_*, e.g. through an extern declaration of its own).
# The build enforces the first part too: CMakeLists.txt compiles these files without lib/ on
# the include path. usage: tools/check_cli_public.sh [SOURCE_DIR]
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
dir=$root/apps/fewcl
developer_tools='^(bench.*|episode)\.[ch]$' # may use the library's internals: see docs/api.md
bad=0 checked=0
for path in "$dir"/*.c "$dir"/*.h; do
  file=$(basename "$path")
  [[ $file =~ $developer_tools ]] && continue
  checked=$((checked + 1))
  while IFS= read -r line; do
    n=${line%%:*} text=${line#*:}
    if [[ $text =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\<[^\>]+\> ]]; then
      continue # a system or libc header
    elif [[ $text =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"fewcl/[a-z_]+\.h\" ]]; then
      continue # the public API
    elif [[ $text =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([a-z_]+\.h)\" ]]; then
      own=${BASH_REMATCH[1]}
      [[ -f $dir/$own ]] && continue # the tool's own header, checked in this loop too
      echo "$file:$n: includes \"$own\", which is not a header of apps/fewcl/" >&2
    else
      echo "$file:$n: $text: not a public header (include/fewcl/) nor a system one" >&2
    fi
    bad=1
  done < <(grep -n '^[[:space:]]*#[[:space:]]*include' "$path" || true)
  # Internal names, outside comments (a line comment or a block comment's own lines).
  if grep -nE '\b(fcl|FCL)_[A-Za-z0-9_]+' "$path" | grep -vE '^[0-9]+:[[:space:]]*(/?\*|//)' \
    >/tmp/cli_public.$$; then
    sed "s|^|$file:|; s|\$|  <- an internal name (fcl_*/FCL_*)|" /tmp/cli_public.$$ >&2
    bad=1
  fi
  rm -f /tmp/cli_public.$$
done
if [ "$checked" -lt 10 ]; then
  echo "only $checked files checked in $dir: the tool's sources moved?" >&2
  exit 1
fi
if [ "$bad" -ne 0 ]; then
  echo "the fewcl tool must use only the public API (include/fewcl/); extend the API (docs/api.md)" \
    "rather than include lib/ — only bench* and episode may" >&2
  exit 1
fi
echo "apps/fewcl: $checked files use only the public API (bench*, episode excepted)"
