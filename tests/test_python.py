"""The Python binding (bindings/python), installed with pip from the source tree into a
temporary folder and run against the build's libfewcl.so (FEWCL_LIBRARY):

- predictions: Model.enroll + classify give the classes and probabilities of `fewcl predict`
  on the same weights and image files (to the printed digits), and embeddings are [N, D'];
- inputs: paths, 8-bit RGB arrays and prepared float arrays give the same result;
- failures raise fewcl.Error with fewcl's message (missing file, unequal classes, wrong image
  size, unknown device, classify before enroll, a closed model);
- jobs: train with a progress callback that stops the run, resume, test, plan;
- the Python example of docs/api.md runs as written.

usage: test_python.py FEWCL_BIN   (with FEWCL_LIBRARY set; Debian's python3 and numpy)
Model: conv4 at 16x16, 3-way 2-shot 2-query, initialised; images: small BMP files of three
colour classes written here.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEWCL_BIN = sys.argv.pop(1) if len(sys.argv) > 1 else "fewcl"


def default_device():
    """The "P:D" a context opened with no choice gets: FEWCL_DEVICE when it is an index, else the
    first GPU, else the first CPU device (`fewcl devices --json`)."""
    chosen = os.environ.get("FEWCL_DEVICE", "")
    if chosen.count(":") == 1 and all(p.isdigit() for p in chosen.split(":")):
        return chosen
    listed = json.loads(subprocess.run([FEWCL_BIN, "devices", "--json"], check=True,
                                       capture_output=True).stdout)
    for kind in ("gpu", "cpu"):
        for d in listed:
            if d["type"] == kind:
                return d["index"]
    raise AssertionError("no device")
SMALL = dict(image_size=16, n_way=3, k_shot=2, n_query=2, reduced_dim=32, heads=2, dim_head=8,
             mlp_dim=16)


def write_bmp(path, rgb):
    """A 24-bit BMP (bottom-up rows of BGR padded to 4 bytes)."""
    h, w, _ = rgb.shape
    row = (3 * w + 3) // 4 * 4
    data = b"".join(rgb[y, :, ::-1].tobytes().ljust(row, b"\0") for y in range(h - 1, -1, -1))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(data), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    with open(path, "wb") as f:
        f.write(header + info + data)


def image(cls, i, size=20):
    """Class cls's colour with noise, seeded by (cls, i)."""
    r = np.random.RandomState(100 * cls + i)
    base = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]][cls], dtype=np.float64)
    return np.clip(base + r.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)


class BindingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="fewcl-python-")
        # pip install from a copy of the source folder (pip writes build files beside it)
        src = os.path.join(cls.dir, "src")
        shutil.copytree(os.path.join(SOURCE, "bindings", "python"), src)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-index", "--no-build-isolation", "--root-user-action=ignore",
                        "--target",
                        os.path.join(cls.dir, "site"), src], check=True)
        sys.path.insert(0, os.path.join(cls.dir, "site"))
        global fewcl
        import fewcl
        cls.assertTrue(cls, fewcl.__file__.startswith(cls.dir))
        # data: data/<class>/<i>.bmp, 6 images of each of 3 classes
        cls.names = ["blue", "green", "red"]
        for c, name in enumerate(["red", "green", "blue"]):
            os.makedirs(os.path.join(cls.dir, "data", name))
            for i in range(6):
                write_bmp(os.path.join(cls.dir, "data", name, "%d.bmp" % i), image(c, i))
        cls.weights = os.path.join(cls.dir, "w.safetensors")
        with fewcl.Model.create(seed=1, **SMALL) as m:
            m.save(cls.weights)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def path(self, cls, i):
        return os.path.join(self.dir, "data", cls, "%d.bmp" % i)

    def test_version(self):
        self.assertEqual(fewcl.version(), "0.1.0")
        self.assertGreaterEqual(fewcl.api_version(), 1)

    def test_predict_matches_tool(self):
        support = os.path.join(self.dir, "support")
        for name in self.names:
            os.makedirs(os.path.join(support, name), exist_ok=True)
            for i in range(2):
                shutil.copy(self.path(name, i), os.path.join(support, name))
        queries = [self.path(name, i) for name in self.names for i in (2, 3)]
        args = [FEWCL_BIN, "predict", "--weights", self.weights, "--support", support, "--json"]
        for q in queries:
            args += ["--query", q]
        tool = json.loads(subprocess.run(args, check=True, capture_output=True).stdout)
        with fewcl.Model.load(self.weights) as m:
            m.enroll([self.path(n, i) for n in self.names for i in range(2)],
                     [n for n in self.names for _ in range(2)])
            self.assertEqual(m.classes, self.names)
            self.assertFalse(m.uniform_weights)  # 3 classes x 2: the trained shape
            labels, probs = m.classify(queries)
            self.assertEqual(probs.shape, (6, 3))
            for r, p in enumerate(tool["predictions"]):
                self.assertEqual(p["class"], labels[r])
                for c, name in enumerate(self.names):  # the same float, printed by cJSON
                    self.assertEqual(np.float32(p["probabilities"][name]), probs[r, c])
            self.assertEqual(m.embed(queries).shape, (6, 32))
            # 8-bit arrays and prepared floats are the same images
            rgb = [image(0, 2)]
            self.assertEqual(m.classify(rgb)[0], [labels[self.names.index("red") * 2]])
            x = fewcl.load_image(queries[0], 16)
            self.assertEqual(x.shape, (3, 16, 16))
            np.testing.assert_array_equal(m.classify(x[None])[1], m.classify(queries[:1])[1])

    def test_errors(self):
        with self.assertRaises(fewcl.Error) as e:
            fewcl.Model.load(os.path.join(self.dir, "missing.safetensors"))
        self.assertIn("missing.safetensors", str(e.exception))
        with self.assertRaises(fewcl.Error) as e:
            fewcl.Context("no-such-device")
        self.assertIn("no-such-device", str(e.exception))
        m = fewcl.Model.load(self.weights)
        with self.assertRaises(fewcl.Error) as e:
            m.classify([self.path("red", 0)])
        self.assertIn("enroll", str(e.exception))
        with self.assertRaises(fewcl.Error) as e:
            m.enroll([self.path("red", 0)] * 3, ["a", "a", "b"])
        self.assertIn("same number", str(e.exception))
        with self.assertRaises(fewcl.Error) as e:
            m.embed(np.zeros((1, 3, 20, 20), np.float32))
        self.assertIn("3x16x16", str(e.exception))
        with self.assertRaises(fewcl.Error) as e:
            m.embed([os.path.join(self.dir, "nothing.png")])
        self.assertIn("nothing.png", str(e.exception))
        with self.assertRaises(fewcl.Error):
            fewcl.Model.create(backbone="vgg")
        m.close()
        m.close()  # closing twice is harmless
        with self.assertRaises(fewcl.Error) as e:
            m.embed([self.path("red", 0)])
        self.assertIn("closed", str(e.exception))

    def test_garbage_collected(self):
        for _ in range(3):  # handles without close(): freed by the collector
            m = fewcl.Model.load(self.weights)
            m.enroll([self.path("red", 0), self.path("blue", 0)], ["r", "b"])
            del m

    def test_train_stop_resume_test(self):
        data = os.path.join(self.dir, "data")
        run = os.path.join(self.dir, "run")
        seen, epochs = [], []

        def stop_at_third(p):
            seen.append(p["phase"])
            return p["phase"] == "train" and len(seen) == 3

        with self.assertRaises(fewcl.Error) as e:
            fewcl.train(data, run, epochs=2, episodes=2, workers=1, progress=stop_at_third,
                        **SMALL)
        self.assertEqual(e.exception.status, "interrupted")
        r = fewcl.train(data, run, epochs=2, episodes=2, workers=1, resume=True,
                        epoch_done=lambda m: epochs.append(m["epoch"]), **SMALL)
        self.assertEqual(r["epochs_done"], 2)
        self.assertEqual(epochs, [2])
        with fewcl.Model.load(os.path.join(run, "best.safetensors")) as m:
            t = m.test(data, episodes=2, workers=1)
            self.assertEqual(t["episodes"], 2)
            # The same episodes split over the default device opened twice: the same numbers.
            here = default_device()
            s = m.test(data, episodes=2, workers=1, devices=here + "," + here)
            self.assertEqual((s["accuracy"], s["ci95"]), (t["accuracy"], t["ci95"]))
            self.assertFalse(t["uniform_weights"])
            self.assertTrue(m.test(data, episodes=2, workers=1, k_shot=1)["uniform_weights"])

    def test_plan(self):
        p = fewcl.plan(training=False, **SMALL)
        self.assertTrue(p["fits"])
        self.assertEqual(sum(p["at_peak"].values()), p["peak_bytes"])
        q = fewcl.plan(training=False, budget=p["peak_bytes"] // 2, **SMALL)
        self.assertFalse(q["fits"])
        self.assertTrue(q["reason"])

    def test_docs_example(self):
        with open(os.path.join(SOURCE, "docs", "api.md")) as f:
            text = f.read()
        code = text.split("```python\n", 1)[1].split("```", 1)[0]
        self.assertLessEqual(len(code.strip().splitlines()), 12)
        work = os.path.join(self.dir, "docs")
        os.makedirs(work)
        shutil.copy(self.weights, os.path.join(work, "weights.safetensors"))
        for name, src in [("cat1", ("red", 0)), ("cat2", ("red", 1)), ("dog1", ("blue", 0)),
                          ("dog2", ("blue", 1)), ("query", ("red", 2))]:
            shutil.copy(self.path(*src), os.path.join(work, name + ".bmp"))
        out = subprocess.run([sys.executable, "-c", code], cwd=work, check=True,
                             capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=os.path.join(self.dir, "site")))
        lines = out.stdout.splitlines()
        self.assertEqual(len(lines), 3)
        self.assertIn(lines[0].split()[0], ("cat", "dog"))
        self.assertEqual(lines[1], "(1, 32)")  # D' of the small model
        self.assertGreater(int(lines[2]), 0)


if __name__ == "__main__":
    unittest.main()
