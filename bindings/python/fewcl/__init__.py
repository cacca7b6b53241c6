"""fewcl: few-shot image classification on any OpenCL device.

A pure ctypes binding of libfewcl's public C API (include/fewcl/): numpy arrays in and out,
nothing to compile. The library is found through the FEWCL_LIBRARY environment variable (a
path to libfewcl.so), else the source tree's build/ folder, else the system's library path.

    import fewcl
    with fewcl.Model.load("best.safetensors") as model:
        model.enroll(["a1.png", "a2.png", "b1.png", "b2.png"], ["a", "a", "b", "b"])
        labels, probabilities = model.classify(["query.png"])

Failures raise fewcl.Error carrying fewcl's message. Handles are freed by close() (or a with
block) and otherwise by the garbage collector.
"""
import ctypes
import ctypes.util
import os

import numpy as np

__all__ = ["Error", "Context", "Model", "load_image", "train", "plan", "version", "api_version"]

# ---- the library ---------------------------------------------------------------------------


def _find_library():
    env = os.environ.get("FEWCL_LIBRARY")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for up in (os.path.join(here, "..", "..", ".."), os.path.join(here, "..", "..")):
        candidate = os.path.join(up, "build", "libfewcl.so")
        if os.path.exists(candidate):
            return os.path.normpath(candidate)
    return ctypes.util.find_library("fewcl") or "libfewcl.so"


_lib = ctypes.CDLL(_find_library())

_c_float_p = ctypes.POINTER(ctypes.c_float)
_c_int_p = ctypes.POINTER(ctypes.c_int)


class Error(Exception):
    """A failed fewcl call: .status is the status name, the message fewcl's explanation."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _check(status):
    if status != 0:
        name = _lib.fewcl_status_name(status).decode()
        raise Error(name, "%s: %s" % (name, _lib.fewcl_last_error().decode()))


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


_fn("fewcl_status_name", ctypes.c_char_p, ctypes.c_int)
_fn("fewcl_last_error", ctypes.c_char_p)
_fn("fewcl_version", ctypes.c_char_p)
_fn("fewcl_api_version", ctypes.c_int)


def version():
    return _lib.fewcl_version().decode()


def api_version():
    return _lib.fewcl_api_version()


# ---- structs (include/fewcl/model.h, jobs.h) -------------------------------------------------

_ENUMS = {
    "backbone": ["conv4", "conv6", "resnet18", "resnet34"],
    "method": ["enhanced", "fsct"],
    "variant": ["cosine", "softmax"],
    "mahalanobis": ["auto", "dense", "lowrank"],
    "checkpointing": ["none", "blocks", "backbone", "all"],
}


class _Config(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("backbone", ctypes.c_int),
                ("image_size", ctypes.c_int), ("method", ctypes.c_int), ("variant", ctypes.c_int),
                ("n_way", ctypes.c_int), ("k_shot", ctypes.c_int), ("n_query", ctypes.c_int),
                ("reduced_dim", ctypes.c_int), ("depth", ctypes.c_int), ("heads", ctypes.c_int),
                ("dim_head", ctypes.c_int), ("mlp_dim", ctypes.c_int),
                ("mahalanobis", ctypes.c_int), ("vic", ctypes.c_int),
                ("checkpointing", ctypes.c_int), ("freeze_backbone", ctypes.c_int),
                ("bn_batch_stats_at_test", ctypes.c_int)]


class _Images(ctypes.Structure):
    _fields_ = [("data", _c_float_p), ("count", ctypes.c_int), ("channels", ctypes.c_int),
                ("height", ctypes.c_int), ("width", ctypes.c_int)]


class _EnrollmentInfo(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("n_classes", ctypes.c_int),
                ("k_shot", ctypes.c_int), ("uniform_weights", ctypes.c_int)]


class _Progress(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("phase", ctypes.c_char_p),
                ("epoch", ctypes.c_int), ("epochs", ctypes.c_int), ("done", ctypes.c_long),
                ("total", ctypes.c_long), ("loss", ctypes.c_double), ("accuracy", ctypes.c_double),
                ("seconds", ctypes.c_double)]


class _EpochMetrics(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("epoch", ctypes.c_int),
                ("loss", ctypes.c_double), ("loss_ce", ctypes.c_double),
                ("loss_var", ctypes.c_double), ("loss_cov", ctypes.c_double),
                ("train_accuracy", ctypes.c_double), ("val_accuracy", ctypes.c_double),
                ("val_ci95", ctypes.c_double), ("seconds", ctypes.c_double)]


_PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_Progress))
_EPOCH_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(_EpochMetrics))


class _TrainParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("model", ctypes.POINTER(_Config)),
                ("train_data", ctypes.c_char_p), ("val_data", ctypes.c_char_p),
                ("data_root", ctypes.c_char_p), ("run_dir", ctypes.c_char_p),
                ("epochs", ctypes.c_int), ("episodes", ctypes.c_int),
                ("val_episodes", ctypes.c_int), ("lr", ctypes.c_double),
                ("weight_decay", ctypes.c_double), ("cosine_lr", ctypes.c_int),
                ("seed", ctypes.c_uint64), ("augment", ctypes.c_int), ("resume", ctypes.c_int),
                ("init_weights", ctypes.c_char_p), ("backbone_weights", ctypes.c_char_p),
                ("backbone_prefix", ctypes.c_char_p), ("workers", ctypes.c_int),
                ("cache_bytes", ctypes.c_size_t), ("skip_bad_images", ctypes.c_int),
                ("progress", _PROGRESS_FN), ("epoch_done", _EPOCH_FN),
                ("user", ctypes.c_void_p), ("cancel", ctypes.c_void_p)]


class _TrainResult(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("epochs_done", ctypes.c_int),
                ("best_val_accuracy", ctypes.c_double), ("best_epoch", ctypes.c_int),
                ("planned_peak_bytes", ctypes.c_size_t), ("last", _EpochMetrics)]


class _TestParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("data", ctypes.c_char_p),
                ("data_root", ctypes.c_char_p), ("episodes", ctypes.c_int),
                ("seed", ctypes.c_uint64), ("n_way", ctypes.c_int), ("k_shot", ctypes.c_int),
                ("n_query", ctypes.c_int), ("workers", ctypes.c_int),
                ("cache_bytes", ctypes.c_size_t), ("skip_bad_images", ctypes.c_int),
                ("scale_115", ctypes.c_int), ("progress", _PROGRESS_FN),
                ("user", ctypes.c_void_p), ("cancel", ctypes.c_void_p),
                ("dataset", ctypes.c_void_p), ("devices", ctypes.c_char_p)]  # API 2, API 3


class _TestResult(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("accuracy", ctypes.c_double),
                ("ci95", ctypes.c_double), ("episodes", ctypes.c_int),
                ("uniform_weights", ctypes.c_int), ("seconds", ctypes.c_double)]


_MEM_CATEGORIES = 6


class _PlanParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("training", ctypes.c_int),
                ("device_memory", ctypes.c_uint64), ("max_alloc", ctypes.c_uint64),
                ("budget", ctypes.c_uint64), ("fit", ctypes.c_int)]


class _PlanResult(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("fits", ctypes.c_int),
                ("peak_bytes", ctypes.c_uint64), ("reserved_bytes", ctypes.c_uint64),
                ("at_peak", ctypes.c_uint64 * _MEM_CATEGORIES),
                ("category_peak", ctypes.c_uint64 * _MEM_CATEGORIES),
                ("reason", ctypes.c_char * 512), ("changes", ctypes.c_char * 256),
                ("config", _Config)]


_P = ctypes.c_void_p
_fn("fewcl_context_create", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_P))
_fn("fewcl_context_destroy", None, _P)
_fn("fewcl_model_config_default", ctypes.c_int, ctypes.POINTER(_Config), ctypes.c_size_t)
_fn("fewcl_model_config_set_method", ctypes.c_int, ctypes.POINTER(_Config), ctypes.c_int)
_fn("fewcl_model_create", ctypes.c_int, _P, ctypes.POINTER(_Config), ctypes.c_uint64,
    ctypes.POINTER(_P))
_fn("fewcl_model_load", ctypes.c_int, _P, ctypes.c_char_p, ctypes.POINTER(_Config),
    ctypes.POINTER(_P))
_fn("fewcl_model_load_backbone", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_char_p)
_fn("fewcl_model_save", ctypes.c_int, _P, ctypes.c_char_p)
_fn("fewcl_model_get_config", ctypes.c_int, _P, ctypes.POINTER(_Config))
_fn("fewcl_model_embedding_dim", ctypes.c_int, _P)
_fn("fewcl_model_destroy", None, _P)
_fn("fewcl_image_load", ctypes.c_int, ctypes.c_char_p, ctypes.c_int, _c_float_p)
_fn("fewcl_image_prepare_rgb8", ctypes.c_int, ctypes.POINTER(ctypes.c_uint8), ctypes.c_int,
    ctypes.c_int, ctypes.c_size_t, ctypes.c_int, _c_float_p)
_fn("fewcl_embed", ctypes.c_int, _P, ctypes.POINTER(_Images), _c_float_p)
_fn("fewcl_enroll", ctypes.c_int, _P, ctypes.POINTER(_Images), _c_int_p, ctypes.c_int,
    ctypes.POINTER(_P))
_fn("fewcl_enrollment_get_info", ctypes.c_int, _P, ctypes.POINTER(_EnrollmentInfo))
_fn("fewcl_classify", ctypes.c_int, _P, ctypes.POINTER(_Images), _c_float_p, _c_float_p,
    _c_int_p)
_fn("fewcl_enrollment_destroy", None, _P)
_fn("fewcl_train_params_default", ctypes.c_int, ctypes.POINTER(_TrainParams), ctypes.c_size_t)
_fn("fewcl_train", ctypes.c_int, _P, ctypes.POINTER(_TrainParams), ctypes.POINTER(_TrainResult))
_fn("fewcl_test_params_default", ctypes.c_int, ctypes.POINTER(_TestParams), ctypes.c_size_t)
_fn("fewcl_test", ctypes.c_int, _P, ctypes.POINTER(_TestParams), ctypes.POINTER(_TestResult))
_fn("fewcl_plan_params_default", ctypes.c_int, ctypes.POINTER(_PlanParams), ctypes.c_size_t)
_fn("fewcl_plan", ctypes.c_int, _P, ctypes.POINTER(_Config), ctypes.POINTER(_PlanParams),
    ctypes.POINTER(_PlanResult))
_fn("fewcl_mem_category_name", ctypes.c_char_p, ctypes.c_int)


def _bytes(s):
    return None if s is None else os.fsencode(s)


def _config(fields):
    """A _Config from the defaults and keyword fields (enum fields by name)."""
    c = _Config()
    _check(_lib.fewcl_model_config_default(ctypes.byref(c), ctypes.sizeof(c)))
    fields = dict(fields)
    if "method" in fields:  # the method sets its default depth and heads: first
        _check(_lib.fewcl_model_config_set_method(
            ctypes.byref(c), _ENUMS["method"].index(fields.pop("method"))))
    for key, value in fields.items():
        if key not in dict(_Config._fields_) or key == "struct_size":
            raise Error("invalid argument", "unknown model setting %r" % key)
        if key in _ENUMS:
            if value not in _ENUMS[key]:
                raise Error("invalid argument", "%s %r: expected one of %s"
                            % (key, value, ", ".join(_ENUMS[key])))
            value = _ENUMS[key].index(value)
        setattr(c, key, int(value))
    return c


def _config_dict(c):
    out = {}
    for key, _ in _Config._fields_[1:]:
        value = getattr(c, key)
        out[key] = _ENUMS[key][value] if key in _ENUMS else value
    return out


# ---- images ----------------------------------------------------------------------------------


def load_image(path, size):
    """An image file with the evaluation transform: float32 [3, size, size]."""
    out = np.empty((3, size, size), dtype=np.float32)
    _check(_lib.fewcl_image_load(_bytes(path), size, out.ctypes.data_as(_c_float_p)))
    return out


def _prepare_rgb8(pixels, size):
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise Error("invalid argument", "8-bit images must be [height, width, 3] RGB, not %s"
                    % (pixels.shape,))
    out = np.empty((3, size, size), dtype=np.float32)
    _check(_lib.fewcl_image_prepare_rgb8(
        pixels.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), pixels.shape[1], pixels.shape[0],
        pixels.strides[0], size, out.ctypes.data_as(_c_float_p)))
    return out


def _batch(images, size):
    """float32 [N, 3, size, size] from paths, 8-bit RGB arrays or prepared float arrays."""
    if isinstance(images, np.ndarray) and images.dtype != np.uint8:
        x = np.ascontiguousarray(images, dtype=np.float32)
        return x[None] if x.ndim == 3 else x
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    out = []
    for img in images:
        if isinstance(img, (str, bytes, os.PathLike)):
            out.append(load_image(img, size))
        elif isinstance(img, np.ndarray) and img.dtype == np.uint8:
            out.append(_prepare_rgb8(img, size))
        else:
            out.append(np.asarray(img, dtype=np.float32))
    return np.ascontiguousarray(np.stack(out), dtype=np.float32) if out else \
        np.empty((0, 3, size, size), dtype=np.float32)


def _images(x):
    if x.ndim != 4:
        raise Error("invalid argument", "images must be [N, 3, S, S], not %s" % (x.shape,))
    return _Images(x.ctypes.data_as(_c_float_p), *[int(d) for d in x.shape])


# ---- contexts and models ----------------------------------------------------------------------


class _Handle:
    """Owns one C handle: freed by close(), a with block, or the garbage collector."""

    _destroy = None

    def __init__(self, handle, *keep):
        self._h, self._keep = handle, keep

    def close(self):
        if getattr(self, "_h", None):
            destroy, self._h, h = type(self)._destroy, None, self._h
            if destroy is not None:  # None only at interpreter shutdown
                destroy(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    @property
    def handle(self):
        if not self._h:
            raise Error("invalid argument", "%s is closed" % type(self).__name__)
        return self._h


class Context(_Handle):
    """An OpenCL device: "P:D", part of a name ("pocl", "nvidia"), or None for the default."""

    _destroy = _lib.fewcl_context_destroy

    def __init__(self, device=None):
        h = _P()
        _check(_lib.fewcl_context_create(_bytes(device), ctypes.byref(h)))
        super().__init__(h)


class _Enrollment(_Handle):
    _destroy = _lib.fewcl_enrollment_destroy


class Model(_Handle):
    """A few-shot model on a device. Create with Model.load or Model.create."""

    _destroy = _lib.fewcl_model_destroy

    def __init__(self, handle, context):
        super().__init__(handle)
        self.context = context  # the model borrows it: kept alive as long as the model
        self._enrolled = None
        self.classes = None
        self.uniform_weights = None

    @classmethod
    def load(cls, path, device=None, context=None):
        """Trained weights; a fewcl checkpoint gives its own architecture."""
        context = context or Context(device)
        h = _P()
        _check(_lib.fewcl_model_load(context.handle, _bytes(path), None, ctypes.byref(h)))
        return cls(h, context)

    @classmethod
    def create(cls, seed=1, device=None, context=None, **config):
        """A new model from settings (backbone="conv4", image_size=84, n_way=5, ...)."""
        context = context or Context(device)
        c = _config(config)
        h = _P()
        _check(_lib.fewcl_model_create(context.handle, ctypes.byref(c), seed, ctypes.byref(h)))
        return cls(h, context)

    def close(self):
        if getattr(self, "_enrolled", None):
            self._enrolled.close()
        super().close()

    @property
    def config(self):
        c = _Config()
        _check(_lib.fewcl_model_config_default(ctypes.byref(c), ctypes.sizeof(c)))
        _check(_lib.fewcl_model_get_config(self.handle, ctypes.byref(c)))
        return _config_dict(c)

    @property
    def image_size(self):
        return self.config["image_size"]

    def save(self, path):
        _check(_lib.fewcl_model_save(self.handle, _bytes(path)))

    def load_backbone(self, path, prefix=""):
        _check(_lib.fewcl_model_load_backbone(self.handle, _bytes(path), _bytes(prefix)))

    def embed(self, images):
        """Embeddings [N, D'] of images (paths, 8-bit RGB arrays or float [N, 3, S, S])."""
        x = _batch(images, self.image_size)
        out = np.empty((x.shape[0], _lib.fewcl_model_embedding_dim(self.handle)), np.float32)
        _check(_lib.fewcl_embed(self.handle, ctypes.byref(_images(x)),
                                out.ctypes.data_as(_c_float_p)))
        return out

    def enroll(self, images, labels):
        """Enrolls a support set: one label per image, the same number of images per label.
        Classes are the sorted distinct labels (self.classes)."""
        x = _batch(images, self.image_size)
        labels = list(labels)
        if len(labels) != x.shape[0]:
            raise Error("invalid argument", "%d images but %d labels" % (x.shape[0], len(labels)))
        classes = sorted(set(labels))
        order = sorted(range(len(labels)), key=lambda i: (classes.index(labels[i]), i))
        x = np.ascontiguousarray(x[order]) if order else x
        counts = (ctypes.c_int * max(len(classes), 1))(*[labels.count(c) for c in classes])
        h = _P()
        _check(_lib.fewcl_enroll(self.handle, ctypes.byref(_images(x)), counts, len(classes),
                                 ctypes.byref(h)))
        if self._enrolled:
            self._enrolled.close()
        self._enrolled, self.classes = _Enrollment(h), classes
        info = _EnrollmentInfo(ctypes.sizeof(_EnrollmentInfo))
        _check(_lib.fewcl_enrollment_get_info(h, ctypes.byref(info)))
        self.uniform_weights = bool(info.uniform_weights)
        return self

    def classify(self, images):
        """(labels, probabilities [N, classes]) of images against the enrolled support set."""
        if not self._enrolled:
            raise Error("invalid argument", "classify: enroll a support set first")
        x = _batch(images, self.image_size)
        n = len(self.classes)
        probs = np.empty((x.shape[0], n), np.float32)
        idx = np.empty(x.shape[0], np.int32)
        _check(_lib.fewcl_classify(self._enrolled.handle, ctypes.byref(_images(x)), None,
                                   probs.ctypes.data_as(_c_float_p), idx.ctypes.data_as(_c_int_p)))
        return [self.classes[i] for i in idx], probs

    def test(self, data, episodes=600, seed=1, n_way=0, k_shot=0, n_query=0, workers=2,
             data_root=None, progress=None, devices=None):
        """Accuracy over episodes of a dataset: dict(accuracy, ci95, episodes, uniform_weights).
        devices ("all" or "P:D,P:D,..."): the episodes split over those devices, same result."""
        p = _TestParams()
        _check(_lib.fewcl_test_params_default(ctypes.byref(p), ctypes.sizeof(p)))
        keep = [_bytes(data), _bytes(data_root), _bytes(devices)]
        p.data, p.data_root, p.devices = keep
        p.episodes, p.seed, p.workers = episodes, seed, workers
        p.n_way, p.k_shot, p.n_query = n_way, k_shot, n_query
        errors = []
        callback = _progress_callback(progress, errors)
        p.progress = callback
        r = _TestResult(ctypes.sizeof(_TestResult))
        status = _lib.fewcl_test(self.handle, ctypes.byref(p), ctypes.byref(r))
        if errors:
            raise errors[0]
        _check(status)
        return {"accuracy": r.accuracy, "ci95": r.ci95, "episodes": r.episodes,
                "uniform_weights": bool(r.uniform_weights), "seconds": r.seconds}


# ---- jobs -------------------------------------------------------------------------------------


def _progress_callback(progress, errors):
    """A C progress function calling progress(dict); a True return or an exception cancels."""
    if progress is None:
        return _PROGRESS_FN()

    def call(user, p):
        try:
            q = p.contents
            return 1 if progress({"phase": q.phase.decode(), "epoch": q.epoch,
                                  "epochs": q.epochs, "done": q.done, "total": q.total,
                                  "loss": q.loss, "accuracy": q.accuracy,
                                  "seconds": q.seconds}) else 0
        except BaseException as e:  # noqa: B902 - carried over the C frames, raised after
            errors.append(e)
            return 1
    return _PROGRESS_FN(call)


def _metrics(m):
    return {k: getattr(m, k) for k, _ in _EpochMetrics._fields_[1:]}


def train(train_data, run_dir, val_data=None, device=None, context=None, progress=None,
          epoch_done=None, epochs=50, episodes=200, val_episodes=200, lr=1e-3, seed=1,
          resume=False, augment=True, workers=2, data_root=None, **config):
    """Trains as `fewcl train` does (run_dir gets checkpoints, metrics.csv, curves.svg).
    progress(dict) after each episode may return True to stop (a checkpoint is saved; resume
    with resume=True). Returns dict(epochs_done, best_val_accuracy, best_epoch, last)."""
    context = context or Context(device)
    c = _config(config)
    p = _TrainParams()
    _check(_lib.fewcl_train_params_default(ctypes.byref(p), ctypes.sizeof(p)))
    keep = [_bytes(train_data), _bytes(val_data), _bytes(run_dir), _bytes(data_root)]
    p.train_data, p.val_data, p.run_dir, p.data_root = keep
    p.model = ctypes.pointer(c)
    p.epochs, p.episodes, p.val_episodes, p.lr, p.seed = epochs, episodes, val_episodes, lr, seed
    p.resume, p.augment, p.workers = int(resume), int(augment), workers
    errors = []
    callback = _progress_callback(progress, errors)  # kept alive for the call
    p.progress = callback
    on_epoch = _EPOCH_FN(lambda user, m: epoch_done(_metrics(m.contents))) if epoch_done \
        else _EPOCH_FN()
    p.epoch_done = on_epoch
    r = _TrainResult(ctypes.sizeof(_TrainResult))
    status = _lib.fewcl_train(context.handle, ctypes.byref(p), ctypes.byref(r))
    if errors:
        raise errors[0]
    _check(status)
    return {"epochs_done": r.epochs_done, "best_val_accuracy": r.best_val_accuracy,
            "best_epoch": r.best_epoch, "last": _metrics(r.last)}


def plan(training=True, fit=False, budget=0, device_memory=0, max_alloc=0, device=None,
         context=None, **config):
    """Device memory of one episode per category, as `fewcl plan` reports it."""
    context = context or Context(device)
    c = _config(config)
    p = _PlanParams()
    _check(_lib.fewcl_plan_params_default(ctypes.byref(p), ctypes.sizeof(p)))
    p.training, p.fit, p.budget = int(training), int(fit), budget
    p.device_memory, p.max_alloc = device_memory, max_alloc
    r = _PlanResult(ctypes.sizeof(_PlanResult))
    _check(_lib.fewcl_plan(context.handle, ctypes.byref(c), ctypes.byref(p), ctypes.byref(r)))
    names = [_lib.fewcl_mem_category_name(i).decode() for i in range(_MEM_CATEGORIES)]
    return {"fits": bool(r.fits), "peak_bytes": r.peak_bytes,
            "reserved_bytes": r.reserved_bytes, "at_peak": dict(zip(names, r.at_peak)),
            "category_peak": dict(zip(names, r.category_peak)),
            "reason": r.reason.decode(), "changes": r.changes.decode(),
            "config": _config_dict(r.config)}
