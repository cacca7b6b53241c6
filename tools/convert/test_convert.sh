#!/bin/bash
# The converters on tiny fake layouts give the splits and labels of the reference's writers
# (docs/spec.md §5.2). Loading such files is test_dataset's job. usage: test_convert.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3
# CUB: 8 classes → base 0,2,4,6; val 1,5; novel 3,7.
for i in 0 1 2 3 4 5 6 7; do
  mkdir -p "$tmp/cub/images/$(printf '%03d.bird%d' $((i + 1)) "$i")"
  for j in 1 2; do : > "$tmp/cub/images/$(printf '%03d.bird%d' $((i + 1)) "$i")/img$j.jpg"; done
done
: > "$tmp/cub/images/001.bird0/.hidden.jpg"
"$py" "$here/fsct_filelists.py" cub "$tmp/cub" "$tmp/cub-out" > /dev/null
"$py" - "$tmp/cub-out" <<'PY'
import json, sys
d = sys.argv[1]
want = {"base": [0, 2, 4, 6], "val": [1, 5], "novel": [3, 7]}
for split, labels in want.items():
    j = json.load(open(f"{d}/{split}.json"))
    assert sorted(set(j["image_labels"])) == labels, (split, j["image_labels"])
    assert len(j["image_names"]) == 2 * len(labels), split
    assert len(j["label_names"]) == 8 and not any(".hidden" in n for n in j["image_names"])
PY
# miniImageNet: 2 + 1 + 1 classes, one counter across the splits.
mkdir -p "$tmp/mini"
printf 'filename,label\na1.jpg,n01\na2.jpg,n01\nb1.jpg,n02\n' > "$tmp/mini/train.csv"
printf 'filename,label\nc1.jpg,n03\n' > "$tmp/mini/val.csv"
printf 'filename,label\nd1.jpg,n04\n' > "$tmp/mini/test.csv"
"$py" "$here/fsct_filelists.py" miniimagenet "$tmp/mini" "$tmp/mini-out" > /dev/null
"$py" - "$tmp/mini-out" <<'PY'
import json, sys
d = sys.argv[1]
for split, labels in {"base": [0, 0, 1], "val": [2], "novel": [3]}.items():
    j = json.load(open(f"{d}/{split}.json"))
    assert j["image_labels"] == labels, (split, j["image_labels"])
    assert j["label_names"] == ["n01", "n02", "n03", "n04"]
    assert all("/Dataset/n0" in n for n in j["image_names"])
PY
echo "converters: ok"
