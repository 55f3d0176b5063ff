"""DeepDream for NumPy arrays, over the shared library libdeepdream.so.0.

    import deepdream
    photo = deepdream.load("photo.jpg")            # (H, W, 3) uint8
    out = deepdream.dream(photo, layers="mixed4", octaves=4, steps=10)
    deepdream.save(out, "dream.png")

A pure-Python module (ctypes): nothing is compiled at install time, it only
needs the installed library (found by the dynamic loader as
libdeepdream.so.0, or at the path in the environment variable
DEEPDREAM_LIBRARY) and NumPy.

Arrays are uint8 or uint16 (8 or 16 bits a sample), shaped (H, W) or
(H, W, 1) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA.
A dream returns a new array of the same shape and dtype; the input is never
written. Alpha is left as it was, grey stays grey.

Parameters are the command line's long options with underscores: layers,
octaves (a number or "auto"), octave_scale, steps, step_size, jitter, tile,
seed, threads, max_size, arithmetic, invert_mask, preserve_colors, blend,
frame_steps, and preset (applied first; the others given beside it win).
Masks and guides are not offered yet: they are image pointers in dd_params
that dd_params_set has no key for (so invert_mask has nothing to invert).

Threads: ctypes releases the GIL during each library call, so dreams in
several Python threads run in parallel; a Model may be shared by all of
them (a loaded model is immutable, each dream is independent). Failures
raise deepdream.Error (deepdream.Cancelled when a progress callback stops
the dream).
"""

import contextlib
import ctypes
import numbers
import os
import secrets
import signal
import threading

import numpy as np

__all__ = ["Error", "Cancelled", "Model", "dream", "load", "save", "version", "presets"]

# The library's version this module was written against: the same major
# version (0.x changes are additive within a SOVERSION), and at least 0.2,
# whose dd_params carries its size and whose dd_params_set knows "threads".
_NEED_MAJOR, _NEED_MINOR = 0, 2

# dd_status values (include/deepdream.h).
OK = 0
ERR_INVALID_ARG = 1
ERR_NOMEM = 2
ERR_IO = 3
ERR_CORRUPT = 4
ERR_LIMIT = 5
ERR_MODEL = 6
ERR_CANCELLED = 7
ERR_TOO_SMALL = 8

_FORMAT_UNKNOWN = 0

# dd_params is never mirrored here: a buffer at least as large as any
# dd_params the library may ever have, which dd_params_init fills (it
# writes the library's own size into the first field) and dd_params_set
# changes key by key. uint64 elements keep it 8-byte aligned.
_PARAMS_WORDS = 512

# Python keyword -> dd_params_set key.
_KEYS = {k.replace("-", "_"): k for k in (
    "layers", "octaves", "octave-scale", "steps", "step-size", "jitter", "tile", "seed", "threads",
    "max-size", "arithmetic", "invert-mask", "preserve-colors", "blend", "frame-steps")}

_c_void_pp = ctypes.POINTER(ctypes.c_void_p)
_PROGRESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                             ctypes.c_int, ctypes.c_int)


def _open_library():
    path = os.environ.get("DEEPDREAM_LIBRARY") or "libdeepdream.so.0"
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError("deepdream: cannot load the library %s (%s): install it where the loader "
                          "looks (or add its directory to LD_LIBRARY_PATH), or set DEEPDREAM_LIBRARY "
                          "to its path" % (path, e)) from e
    st, p, i, u, sz, s = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_size_t,
                          ctypes.c_char_p)
    # Every function this module calls, with its prototype (a missing one
    # would default to int arguments and truncate pointers).
    for name, res, args in (
            ("dd_version", u, []),
            ("dd_strerror", s, [st]),
            ("dd_last_error", s, []),
            ("dd_free", None, [p]),
            ("dd_model_load_default", st, [_c_void_pp]),
            ("dd_model_load_file", st, [s, _c_void_pp]),
            ("dd_model_free", None, [p]),
            ("dd_model_layer_count", i, [p]),
            ("dd_model_layer_name", s, [p, i]),
            ("dd_model_default_layers", s, [p]),
            ("dd_image_new", st, [i, i, i, i, p, _c_void_pp]),
            ("dd_image_load_file", st, [s, ctypes.c_uint64, _c_void_pp]),
            ("dd_image_save_memory", st, [p, i, i, s, _c_void_pp, ctypes.POINTER(sz)]),
            ("dd_image_free", None, [p]),
            ("dd_image_pixels", p, [p]),
            ("dd_image_bytes", sz, [p]),
            ("dd_image_width", i, [p]),
            ("dd_image_height", i, [p]),
            ("dd_image_channels", i, [p]),
            ("dd_image_depth", i, [p]),
            ("dd_format_from_name", i, [s]),
            ("dd_params_init", st, [p, sz]),
            ("dd_params_set", st, [p, s, s]),
            ("dd_params_preset", st, [p, s]),
            ("dd_preset_count", i, []),
            ("dd_preset_info", st, [i] + [ctypes.POINTER(s)] * 5),
            ("dd_dream", st, [p, p, p, _PROGRESS, p])):
        try:
            f = getattr(lib, name)
        except AttributeError as e:
            raise ImportError("deepdream: %s has no %s: an older library than this module" % (path, name)) from e
        f.restype, f.argtypes = res, args
    v = lib.dd_version()
    major, minor = v // 10000, v // 100 % 100
    if major != _NEED_MAJOR or minor < _NEED_MINOR:
        raise ImportError("deepdream: the library %s is version %d.%d.%d; this module needs %d.x from %d.%d"
                          % (path, major, minor, v % 100, _NEED_MAJOR, _NEED_MAJOR, _NEED_MINOR))
    return lib


_lib = _open_library()


def version():
    """The loaded library's version as text, e.g. "0.2.0"."""
    v = _lib.dd_version()
    return "%d.%d.%d" % (v // 10000, v // 100 % 100, v % 100)


class Error(Exception):
    """A library call failed.

    status: the dd_status number (deepdream.ERR_*); text: its fixed
    description (dd_strerror); detail: the library's one-line message for
    this failure (dd_last_error), which str() shows.
    """

    def __init__(self, status, detail):
        self.status = status
        self.text = _lib.dd_strerror(status).decode("utf-8", "replace")
        self.detail = detail
        # The detail when the library gave one ("mixed9: no such layer"),
        # with the status's text unless it says no more ("cancelled").
        if not detail or detail == self.text:
            message = self.text
        else:
            message = "%s (%s)" % (detail, self.text)
        super().__init__(message)


class Cancelled(Error):
    """The progress callback returned true. (An exception raised in the
    callback stops the dream too, but is raised itself, as is Ctrl-C's
    KeyboardInterrupt.)"""


def _check(status):
    # dd_last_error is per thread and cleared by the next call: read it now,
    # on the thread that made the failing call.
    if status != OK:
        detail = (_lib.dd_last_error() or b"").decode("utf-8", "replace")
        raise (Cancelled if status == ERR_CANCELLED else Error)(status, detail)


# ---- arrays <-> dd_image ---------------------------------------------------

def _checked_array(array):
    """array as a C-contiguous native-order uint8/uint16 array and its
    (height, width, channels, depth), or ValueError saying what is wrong."""
    a = np.asarray(array)
    if a.dtype.kind != "u" or a.dtype.itemsize not in (1, 2):
        raise ValueError("deepdream: pixels must be uint8 or uint16, not %s" % a.dtype)
    if a.ndim == 2:
        channels = 1
    elif a.ndim == 3:
        channels = a.shape[2]
        if not 1 <= channels <= 4:
            raise ValueError("deepdream: %d channels (shape %s): an image has 1 (grey), 2 (grey + alpha), "
                             "3 (RGB) or 4 (RGBA)" % (channels, a.shape))
    else:
        raise ValueError("deepdream: an image is (H, W) or (H, W, C), not %d-dimensional (shape %s)"
                         % (a.ndim, a.shape))
    if a.size == 0:
        raise ValueError("deepdream: empty image (shape %s)" % (a.shape,))
    # The library reads interleaved, packed rows; 16-bit samples in the
    # machine's own byte order (a '>u2' array is swapped here).
    native = np.uint8 if a.dtype.itemsize == 1 else np.uint16
    a = np.ascontiguousarray(a, dtype=native)
    return a, (a.shape[0], a.shape[1], channels, 8 * a.dtype.itemsize)


class _Image:
    """A dd_image owned by Python, freed on close or collection."""

    def __init__(self, ptr):
        self.ptr = ptr

    @classmethod
    def from_array(cls, array):
        a, (h, w, c, depth) = _checked_array(array)
        ptr = ctypes.c_void_p()
        _check(_lib.dd_image_new(w, h, c, depth, a.ctypes.data, ctypes.byref(ptr)))  # copies the pixels
        return cls(ptr)

    def to_array(self, shape=None, dtype=None):
        """A new array of the image's samples: (H, W) for grey unless shape
        says otherwise."""
        h, w = _lib.dd_image_height(self.ptr), _lib.dd_image_width(self.ptr)
        c, depth = _lib.dd_image_channels(self.ptr), _lib.dd_image_depth(self.ptr)
        out = np.empty((h, w) if c == 1 else (h, w, c), np.uint8 if depth == 8 else np.uint16)
        n = _lib.dd_image_bytes(self.ptr)
        if n != out.nbytes:  # a library that disagrees with its own header
            raise Error(ERR_INVALID_ARG, "image of %d bytes, expected %d" % (n, out.nbytes))
        ctypes.memmove(out.ctypes.data, _lib.dd_image_pixels(self.ptr), n)
        if shape is not None:
            out = out.reshape(shape)
        if dtype is not None:
            out = out.astype(dtype, copy=False)
        return out

    def close(self):
        if self.ptr:
            _lib.dd_image_free(self.ptr)
            self.ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: _lib may be gone already
            pass


def load(path, max_pixels=0):
    """Decodes a PNG, JPEG, PNM or PAM file (found by its content) into a
    new array: (H, W) for grey, else (H, W, C); uint8 or uint16 as the file
    has it. EXIF orientation is applied. max_pixels > 0 refuses larger
    images before their pixels are read."""
    ptr = ctypes.c_void_p()
    _check(_lib.dd_image_load_file(os.fsencode(path), max_pixels, ctypes.byref(ptr)))
    with _Image(ptr) as image:
        return image.to_array()


def save(array, path, format=None, quality=92, comment=None):
    """Encodes array into path: PNG, JPEG (quality 1..100), PPM, PGM, PNM or
    PAM, from format ("png", "jpg", ...) or else path's extension. Written
    to a temporary file beside path and renamed over it, so path is either
    the whole new image or what it was before, never a part."""
    fmt = _lib.dd_format_from_name(os.fsencode(format if format is not None else os.path.basename(path)))
    if fmt == _FORMAT_UNKNOWN:
        raise ValueError("deepdream: unknown image format %r (png, jpg, ppm, pgm, pnm or pam)"
                         % (format if format is not None else path))
    data, size = ctypes.c_void_p(), ctypes.c_size_t()
    with _Image.from_array(array) as image:
        _check(_lib.dd_image_save_memory(image.ptr, fmt, quality,
                                         None if comment is None else comment.encode("utf-8"),
                                         ctypes.byref(data), ctypes.byref(size)))
    try:
        encoded = ctypes.string_at(data, size.value)
    finally:
        _lib.dd_free(data)  # the library's allocator, not ours
    path = os.fspath(path)
    directory, name = os.path.split(path)
    # Created by open (not mkstemp), so the file gets the umask's usual
    # permissions; O_EXCL and a random name keep writers from colliding.
    tmp = os.path.join(directory, ".%s.%s.tmp" % (name, secrets.token_hex(6)))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(encoded)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---- parameters ------------------------------------------------------------

def _text(key, value):
    """A Python value as the text dd_params_set parses."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))  # round-trips exactly; numpy scalars' repr would not parse
    raise TypeError("deepdream: %s=%r: expected a number, a bool or text" % (key, value))


class _Params:
    """A dd_params buffer set from keywords. It holds the bytes it handed to
    the library: dd_params keeps a pointer to the "layers" text."""

    def __init__(self, params):
        self.buf = (ctypes.c_uint64 * _PARAMS_WORDS)()
        self._keep = []
        _check(_lib.dd_params_init(self.buf, ctypes.sizeof(self.buf)))
        params = dict(params)
        preset = params.pop("preset", None)
        if preset is not None:  # first, so the keywords beside it win (as on the command line)
            _check(_lib.dd_params_preset(self.buf, preset.encode("utf-8")))
        for key, value in params.items():
            if key not in _KEYS:
                raise TypeError("deepdream: unknown parameter %r (known: preset, %s)"
                                % (key, ", ".join(sorted(_KEYS))))
            if value is None:  # the default
                continue
            text = _text(key, value).encode("utf-8")
            self._keep.append(text)
            _check(_lib.dd_params_set(self.buf, _KEYS[key].encode("ascii"), text))


def presets():
    """The presets for preset=...: {name: one-line description}."""
    out = {}
    for i in range(_lib.dd_preset_count()):
        name, desc = ctypes.c_char_p(), ctypes.c_char_p()
        _check(_lib.dd_preset_info(i, ctypes.byref(name), ctypes.byref(desc), None, None, None))
        out[name.value.decode()] = (desc.value or b"").decode()
    return out


# ---- the model and the dream -----------------------------------------------

@contextlib.contextmanager
def _ctrl_c_noted(interrupted):
    """Ctrl-C during a dream noted in interrupted rather than raised.

    Python runs a signal's handler when Python code next runs, here at the
    entry of the progress callback, before any try in it could catch the
    KeyboardInterrupt, which ctypes would then drop. So on the main thread,
    while Python's own SIGINT handler is in place, a quiet one stands in:
    the callback sees the note and cancels, and the dream raises
    KeyboardInterrupt. A handler of the program's own is left alone."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class Model:
    """A loaded network: Model() is the one built into the library,
    Model(path) a deepdream safetensors model file.

    Load it once and dream any number of arrays with it, from any number of
    threads at once. close() (or a with block) frees it now rather than at
    collection; closing while a dream runs on it raises RuntimeError.
    """

    def __init__(self, path=None):
        self._ptr = None
        self._lock = threading.Lock()
        self._busy = 0
        ptr = ctypes.c_void_p()
        if path is None:
            _check(_lib.dd_model_load_default(ctypes.byref(ptr)))
        else:
            _check(_lib.dd_model_load_file(os.fsencode(path), ctypes.byref(ptr)))
        self._ptr = ptr

    def _model(self):
        if not self._ptr:
            raise ValueError("deepdream: the model is closed")
        return self._ptr

    @property
    def layers(self):
        """The layer names an objective may use, in graph order."""
        m = self._model()
        return [_lib.dd_model_layer_name(m, i).decode() for i in range(_lib.dd_model_layer_count(m))]

    @property
    def default_layers(self):
        """The objective used when layers is not given, e.g. "mixed3,mixed4"."""
        return _lib.dd_model_default_layers(self._model()).decode()

    def dream(self, array, progress=None, **params):
        """Dreams array (see the module's docstring for shapes and
        parameters) into a new array of the same shape and dtype.

        progress(octave, octaves, step, steps), if given, is called before
        each step; a true return stops the dream with Cancelled. An
        exception raised in it stops the dream too and is re-raised here.
        Ctrl-C stops a dream between steps (KeyboardInterrupt), with or
        without progress.
        """
        a = np.asarray(array)
        p = _Params(params)
        failure = []

        interrupted = []

        # Always installed, as it is where Python runs during a dream. An
        # exception must not cross into C (ctypes would print and drop it,
        # and return garbage): it is kept and re-raised once dd_dream has
        # returned.
        def on_step(user, octave, octaves, step, steps):
            if interrupted:
                return 1
            try:
                return 1 if progress is not None and progress(octave, octaves, step, steps) else 0
            except BaseException as e:
                failure.append(e)
                return 1

        callback = _PROGRESS(on_step)  # alive until dd_dream returns
        with _Image.from_array(a) as image:
            with self._lock:
                model = self._model()
                self._busy += 1
            try:
                with _ctrl_c_noted(interrupted):
                    status = _lib.dd_dream(model, p.buf, image.ptr, callback, None)
                    detail = (_lib.dd_last_error() or b"").decode("utf-8", "replace") if status else ""
            finally:
                with self._lock:
                    self._busy -= 1
            if interrupted:
                raise KeyboardInterrupt
            if failure:
                raise failure[0]
            if status != OK:
                raise (Cancelled if status == ERR_CANCELLED else Error)(status, detail)
            return image.to_array(a.shape, a.dtype)

    def close(self):
        """Frees the model; using it afterwards raises ValueError."""
        with self._lock:
            if self._busy:
                raise RuntimeError("deepdream: the model is dreaming in another thread")
            ptr, self._ptr = self._ptr, None
        if ptr:
            _lib.dd_model_free(ptr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if getattr(self, "_ptr", None):
                _lib.dd_model_free(self._ptr)
                self._ptr = None
        except Exception:  # interpreter shutdown
            pass


_default_model = None
_default_lock = threading.Lock()


def default_model():
    """The built-in Model, loaded on first use and shared."""
    global _default_model
    with _default_lock:
        if _default_model is None:
            _default_model = Model()
        return _default_model


def dream(array, progress=None, **params):
    """Model.dream with the built-in model (loaded once, then reused)."""
    return default_model().dream(array, progress=progress, **params)
