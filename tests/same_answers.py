"""The Python binding's part of tests/test_same_answers.c: for each episode folder (support/<class>/
<image>, queries/<image>), Model.enroll the supports and classify the queries, and print one
JSON object per line: {"classes": [class of each query], "probabilities": [[every class's]]},
the queries in sorted order, probabilities as exact doubles of the float32 values.

usage: same_answers.py WEIGHTS EPISODE_DIR...  (fewcl importable, FEWCL_LIBRARY set)
"""
import json
import os
import sys

import fewcl


def main():
    weights, episodes = sys.argv[1], sys.argv[2:]
    with fewcl.Model.load(weights) as model:
        for ep in episodes:
            support = os.path.join(ep, "support")
            paths, labels = [], []
            for c in sorted(os.listdir(support)):
                for f in sorted(os.listdir(os.path.join(support, c))):
                    paths.append(os.path.join(support, c, f))
                    labels.append(c)
            model.enroll(paths, labels)
            queries = os.path.join(ep, "queries")
            q = [os.path.join(queries, f) for f in sorted(os.listdir(queries))]
            classes, probabilities = model.classify(q)
            print(json.dumps({"classes": classes,
                              "probabilities": [[float(p) for p in row] for row in probabilities]}))


if __name__ == "__main__":
    main()
