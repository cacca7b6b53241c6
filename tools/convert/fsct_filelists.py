#!/usr/bin/python3
"""Writes FS-CT JSON filelists (base.json, val.json, novel.json) for the usual dataset layouts,
with the splits and label numbering of the reference's writer scripts (docs/spec.md §5.1, §5.2),
so `fewcl train --data OUT` and the PyTorch code see the same episodes' classes.

  cub DIR [OUT]           CUB-200-2011: DIR/images/<class>/* (or DIR = the images folder).
                          Sorted classes i: base i%2==0, val i%4==1, novel i%4==3.
  miniimagenet DIR [OUT]  DIR/{train,val,test}.csv ("name.jpg,wnid" after a header line) and
                          DIR/Dataset/<wnid>/<name>.jpg (or DIR/images/<name>.jpg).
                          One label counter across base → val → novel.
  folder DIR [OUT]        any DIR/<class>/* tree, split by the CUB rule.

Image paths are written absolute (as the reference's writers do). Unlike them, the per-class
file lists are kept in sorted order (the reference shuffles without a seed, which only changes
the order within a class, and fewcl's sampler draws images at random anyway). Plain Python 3.
"""
import csv
import json
import os
import sys

IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


def images_in(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXT))


def write(out, name, label_names, classes):
    """classes: list of (label, [paths]); writes out/name.json."""
    names, labels = [], []
    for label, paths in classes:
        names += [os.path.abspath(p) for p in paths]
        labels += [label] * len(paths)
    if not names:
        sys.exit(f"{name}: no images found; check the dataset layout (see --help)")
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump({"label_names": label_names, "image_names": names, "image_labels": labels}, f)
    print(f"{os.path.join(out, name + '.json')}: {len(classes)} classes, {len(names)} images")


def by_rule(root, out):
    """The CUB/Yoga rule over sorted class folders: base i%2==0, val i%4==1, novel i%4==3."""
    folders = sorted(d for d in os.listdir(root)
                     if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    if not folders:
        sys.exit(f"{root}: no class folders")
    splits = {"base": [], "val": [], "novel": []}
    for i, d in enumerate(folders):
        split = "base" if i % 2 == 0 else ("val" if i % 4 == 1 else "novel")
        splits[split].append((i, images_in(os.path.join(root, d))))
    for name, classes in splits.items():
        write(out, name, folders, classes)


def cub(root, out):
    images = os.path.join(root, "images")
    by_rule(images if os.path.isdir(images) else root, out)


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]  # header line
    return [(r[0], r[1]) for r in rows if len(r) >= 2]


def miniimagenet(root, out):
    label_names, splits, counter = [], {}, 0
    for split, csv_name in (("base", "train.csv"), ("val", "val.csv"), ("novel", "test.csv")):
        path = os.path.join(root, csv_name)
        if not os.path.exists(path):
            sys.exit(f"{path} is missing (the meta-learning-lstm split files)")
        per_class = {}
        for name, wnid in read_csv(path):
            per_class.setdefault(wnid, []).append(name)
        classes = []
        for wnid in sorted(per_class):
            files = []
            for name in sorted(per_class[wnid]):
                a = os.path.join(root, "Dataset", wnid, name)
                b = os.path.join(root, "images", name)
                files.append(a if os.path.exists(a) or not os.path.exists(b) else b)
            classes.append((counter, files))
            label_names.append(wnid)
            counter += 1
        splits[split] = classes
    for name, classes in splits.items():
        write(out, name, label_names, classes)


def main(argv):
    if len(argv) < 3 or argv[1] not in ("cub", "miniimagenet", "folder"):
        sys.exit(__doc__)
    root, out = argv[2], argv[3] if len(argv) > 3 else argv[2]
    os.makedirs(out, exist_ok=True)
    {"cub": cub, "miniimagenet": miniimagenet, "folder": by_rule}[argv[1]](root, out)


if __name__ == "__main__":
    main(sys.argv)
