#!/usr/bin/env python3
"""Converts a torchvision state_dict (GoogLeNet, Inception v3, VGG16, VGG19 or
ResNet-50) into a deepdream model: a safetensors file with the convolutional
trunk's tensors and the graph in its __metadata__ (docs/ARCHITECTURE.md, "The
model file").

usage: python3 tools/convert_torchvision.py --arch ARCH --weights FILE.pth
           --out FILE.safetensors [--dtype f16|f32] [--upto LAYER]
           [--transform-input yes|no]

The weights file is read with torch.load(weights_only=True) only: a pickle that
asks for anything but tensors and plain containers is refused, never run.
Nothing is downloaded and torchvision is not imported: the graphs are built
from the tables below, and the file must hold exactly the keys and shapes the
architecture has. The output depends only on the arguments and the bytes of
the weights file. On any error: one line on stderr, exit status 1, and no
output (it is written to a temporary file beside it, then renamed).

Layer names (what `deepdream --layers` takes), in graph order:
- googlenet: torchvision's module paths: conv1, maxpool1, conv2, conv3,
  maxpool2, inception3a .. inception5b, maxpool3, maxpool4, and each
  inception's branches inception4c.branch1 .. .branch4 (the branch's output).
  A BasicConv2d X is the nodes X.conv, X.bn and X (its ReLU). Default:
  inception4c.
- inception_v3: Conv2d_1a_3x3 .. Conv2d_4a_3x3, maxpool1, maxpool2,
  Mixed_5b .. Mixed_7c, and each block's branch outputs (Mixed_5b.branch1x1,
  Mixed_5b.branch5x5_2, ...; Mixed_7b.branch3x3 and .branch3x3dbl are the
  concatenated 1x3/3x1 pairs). Default: Mixed_5d.
- vgg16, vgg19: conv1_1, relu1_1, ..., pool5 (features.N renamed; a conv's
  name is its value before the ReLU). Default: relu4_3.
- resnet50: relu (the stem's), maxpool, every block layerN.M, and layer1 ..
  layer4, each of which is its stage's last block (so layer3 is what would
  be layer3.5, which is not a separate name). Default: layer3.
--upto LAYER keeps LAYER and what it needs; the default objective becomes
LAYER when the usual one is cut off.

The preprocessing travels in the file: pixels in 0..255, normalised by
ImageNet's mean and std; for googlenet and inception_v3 torchvision's own
input transform follows (transform_input, which its pretrained weights set;
--transform-input no for a model trained without it).

Keys that are accepted and dropped:
- num_batches_tracked of every batch norm (optional: older checkpoints lack it);
- the classifiers, each optional as a whole but complete if present: fc
  (googlenet, inception_v3, resnet50), classifier.0/3/6 (vgg), aux1 and aux2
  (googlenet), AuxLogits (inception_v3). Models built with aux_logits=False
  have no aux keys; torchvision's own checkpoints have them. The last linear
  layer may have any number of classes (a fine-tuned model).
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile

PROG = "convert_torchvision"
ARCHS = ("googlenet", "inception_v3", "vgg16", "vgg19", "resnet50")
# ImageNet statistics torchvision's weights were trained with (pixels in 0..1).
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
LICENSE = ("derived from the weights file named in 'source'; torchvision's ImageNet weights come "
           "with their own terms, which are the user's to check before using or sharing this file")
ANY = "N"  # a dimension the file chooses (the number of classes), the same across its group


class ConvertError(Exception):
    pass


def pair(v):
    return [v, v] if isinstance(v, int) else list(v)


class Graph:
    """Nodes in a fixed order, the tensors they read (key -> shape), the
    user-visible layers, and the classifier groups that are checked and dropped."""

    def __init__(self, arch):
        self.arch = arch
        self.nodes = []
        self.channels = {"input": 3}
        self.params = {}      # key -> shape, in insertion (= output) order
        self.optional = {}    # num_batches_tracked keys -> shape ()
        self.heads = {}       # group name -> {key: shape}
        self.layers = []

    def _add(self, node, channels):
        if node["name"] in self.channels:
            raise AssertionError("duplicate node " + node["name"])
        self.nodes.append(node)
        self.channels[node["name"]] = channels
        return node["name"]

    def conv(self, name, src, filters, kernel, stride=1, padding=0, bias=False, key=None):
        key = key or name
        kh, kw = pair(kernel)
        ph, pw = pair(padding)
        tensors = {"kernel": key + ".weight"}
        self.params[key + ".weight"] = (filters, self.channels[src], kh, kw)
        if bias:
            tensors["bias"] = key + ".bias"
            self.params[key + ".bias"] = (filters,)
        return self._add({"name": name, "op": "conv2d", "inputs": [src], "filters": filters,
                          "kernel": [kh, kw], "strides": pair(stride), "padding": [ph, ph, pw, pw],
                          "use_bias": bias, "kernel_layout": "OIHW", "tensors": tensors}, filters)

    def bn(self, name, src, eps, key=None):
        key = key or name
        c = self.channels[src]
        for t in ("running_mean", "running_var", "bias", "weight"):
            self.params[key + "." + t] = (c,)
        self.optional[key + ".num_batches_tracked"] = ()
        return self._add({"name": name, "op": "batch_norm", "inputs": [src], "epsilon": eps,
                          "center": True, "scale": True,
                          "tensors": {"moving_mean": key + ".running_mean",
                                      "moving_variance": key + ".running_var",
                                      "beta": key + ".bias", "gamma": key + ".weight"}}, c)

    def relu(self, name, src):
        return self._add({"name": name, "op": "relu", "inputs": [src]}, self.channels[src])

    def pool(self, name, src, kind, size, stride, padding=0, ceil_mode=False):
        ph, pw = pair(padding)
        node = {"name": name, "op": "pool", "inputs": [src], "pool": kind, "size": pair(size),
                "strides": pair(stride), "padding": [ph, ph, pw, pw], "ceil_mode": ceil_mode}
        if kind == "avg":
            node["count_padding"] = True  # count_include_pad=True, torchvision's choice
        return self._add(node, self.channels[src])

    def concat(self, name, srcs):
        return self._add({"name": name, "op": "concat", "inputs": list(srcs), "axis": "channels"},
                         sum(self.channels[s] for s in srcs))

    def add(self, name, srcs):
        return self._add({"name": name, "op": "add", "inputs": list(srcs)}, self.channels[srcs[0]])

    def basic_conv(self, path, src, filters, kernel, stride=1, padding=0, eps=0.001, out=None):
        """torchvision's BasicConv2d at module path: conv without bias, batch norm,
        ReLU. Nodes path.conv, path.bn and the ReLU named out (default path)."""
        c = self.conv(path + ".conv", src, filters, kernel, stride, padding)
        b = self.bn(path + ".bn", c, eps)
        return self.relu(out or path, b)

    def head(self, group, shapes):
        """A classifier part: checked, all or none of it, and dropped. A shape of
        None marks an optional key (a batch norm's num_batches_tracked)."""
        self.heads[group] = {k: s for k, s in shapes.items() if s is not None}
        self.optional.update({k: () for k, s in shapes.items() if s is None})

    def layer(self, *names):
        self.layers.extend(names)


def head_basic_conv(prefix, cin, cout, k):
    d = {prefix + ".conv.weight": (cout, cin, k, k)}
    for t in ("weight", "bias", "running_mean", "running_var"):
        d[prefix + ".bn." + t] = (cout,)
    d[prefix + ".bn.num_batches_tracked"] = None
    return d


def linear(prefix, cin, cout):
    return {prefix + ".weight": (cout, cin), prefix + ".bias": (cout,)}


def build_googlenet():
    g = Graph("googlenet")
    x = g.basic_conv("conv1", "input", 64, 7, 2, 3)
    x = g.pool("maxpool1", x, "max", 3, 2, 0, True)
    x = g.basic_conv("conv2", x, 64, 1)
    x = g.basic_conv("conv3", x, 192, 3, 1, 1)
    x = g.pool("maxpool2", x, "max", 3, 2, 0, True)
    g.layer("conv1", "maxpool1", "conv2", "conv3", "maxpool2")
    # (name, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5" (a 3x3 in torchvision), pool proj)
    table = [("inception3a", 64, 96, 128, 16, 32, 32), ("inception3b", 128, 128, 192, 32, 96, 64),
             "maxpool3",
             ("inception4a", 192, 96, 208, 16, 48, 64), ("inception4b", 160, 112, 224, 24, 64, 64),
             ("inception4c", 128, 128, 256, 24, 64, 64), ("inception4d", 112, 144, 288, 32, 64, 64),
             ("inception4e", 256, 160, 320, 32, 128, 128),
             "maxpool4",
             ("inception5a", 256, 160, 320, 32, 128, 128), ("inception5b", 384, 192, 384, 48, 128, 128)]
    for row in table:
        if row == "maxpool3":
            x = g.pool(row, x, "max", 3, 2, 0, True)
            g.layer(row)
            continue
        if row == "maxpool4":
            x = g.pool(row, x, "max", 2, 2, 0, True)
            g.layer(row)
            continue
        n, c1, c3r, c3, c5r, c5, cp = row
        # Each branch's output node carries the branch's module path.
        b1 = g.basic_conv(n + ".branch1", x, c1, 1)
        b2 = g.basic_conv(n + ".branch2.0", x, c3r, 1)
        b2 = g.basic_conv(n + ".branch2.1", b2, c3, 3, 1, 1, out=n + ".branch2")
        b3 = g.basic_conv(n + ".branch3.0", x, c5r, 1)
        b3 = g.basic_conv(n + ".branch3.1", b3, c5, 3, 1, 1, out=n + ".branch3")
        b4 = g.pool(n + ".branch4.0", x, "max", 3, 1, 1, True)
        b4 = g.basic_conv(n + ".branch4.1", b4, cp, 1, out=n + ".branch4")
        x = g.concat(n, [b1, b2, b3, b4])
        g.layer(b1, b2, b3, b4, n)
    for aux, cin in (("aux1", 512), ("aux2", 528)):
        h = head_basic_conv(aux + ".conv", cin, 128, 1)
        h.update(linear(aux + ".fc1", 2048, 1024))
        h.update(linear(aux + ".fc2", 1024, ANY))
        g.head(aux, h)
    g.head("fc", linear("fc", 1024, ANY))
    return g


def build_inception_v3():
    g = Graph("inception_v3")
    bc = g.basic_conv
    x = bc("Conv2d_1a_3x3", "input", 32, 3, 2)
    x = bc("Conv2d_2a_3x3", x, 32, 3)
    x = bc("Conv2d_2b_3x3", x, 64, 3, 1, 1)
    x = g.pool("maxpool1", x, "max", 3, 2)
    x = bc("Conv2d_3b_1x1", x, 80, 1)
    x = bc("Conv2d_4a_3x3", x, 192, 3)
    x = g.pool("maxpool2", x, "max", 3, 2)
    g.layer("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
            "Conv2d_4a_3x3", "maxpool2")

    def avg_pool(n, x):
        # F.avg_pool2d(x, kernel_size=3, stride=1, padding=1): count_include_pad=True
        return g.pool(n + ".pool", x, "avg", 3, 1, 1)

    def block_a(n, x, pool_features):
        b1 = bc(n + ".branch1x1", x, 64, 1)
        b5 = bc(n + ".branch5x5_1", x, 48, 1)
        b5 = bc(n + ".branch5x5_2", b5, 64, 5, 1, 2)
        b3 = bc(n + ".branch3x3dbl_1", x, 64, 1)
        b3 = bc(n + ".branch3x3dbl_2", b3, 96, 3, 1, 1)
        b3 = bc(n + ".branch3x3dbl_3", b3, 96, 3, 1, 1)
        bp = bc(n + ".branch_pool", avg_pool(n, x), pool_features, 1)
        return [b1, b5, b3, bp]

    def block_b(n, x):
        b3 = bc(n + ".branch3x3", x, 384, 3, 2)
        bd = bc(n + ".branch3x3dbl_1", x, 64, 1)
        bd = bc(n + ".branch3x3dbl_2", bd, 96, 3, 1, 1)
        bd = bc(n + ".branch3x3dbl_3", bd, 96, 3, 2)
        bp = g.pool(n + ".pool", x, "max", 3, 2)
        return [b3, bd, bp]

    def block_c(n, x, c7):
        b1 = bc(n + ".branch1x1", x, 192, 1)
        b7 = bc(n + ".branch7x7_1", x, c7, 1)
        b7 = bc(n + ".branch7x7_2", b7, c7, (1, 7), 1, (0, 3))
        b7 = bc(n + ".branch7x7_3", b7, 192, (7, 1), 1, (3, 0))
        bd = bc(n + ".branch7x7dbl_1", x, c7, 1)
        bd = bc(n + ".branch7x7dbl_2", bd, c7, (7, 1), 1, (3, 0))
        bd = bc(n + ".branch7x7dbl_3", bd, c7, (1, 7), 1, (0, 3))
        bd = bc(n + ".branch7x7dbl_4", bd, c7, (7, 1), 1, (3, 0))
        bd = bc(n + ".branch7x7dbl_5", bd, 192, (1, 7), 1, (0, 3))
        bp = bc(n + ".branch_pool", avg_pool(n, x), 192, 1)
        return [b1, b7, bd, bp]

    def block_d(n, x):
        b3 = bc(n + ".branch3x3_1", x, 192, 1)
        b3 = bc(n + ".branch3x3_2", b3, 320, 3, 2)
        b7 = bc(n + ".branch7x7x3_1", x, 192, 1)
        b7 = bc(n + ".branch7x7x3_2", b7, 192, (1, 7), 1, (0, 3))
        b7 = bc(n + ".branch7x7x3_3", b7, 192, (7, 1), 1, (3, 0))
        b7 = bc(n + ".branch7x7x3_4", b7, 192, 3, 2)
        bp = g.pool(n + ".pool", x, "max", 3, 2)
        return [b3, b7, bp]

    def block_e(n, x):
        b1 = bc(n + ".branch1x1", x, 320, 1)
        b3 = bc(n + ".branch3x3_1", x, 384, 1)
        b3 = g.concat(n + ".branch3x3", [bc(n + ".branch3x3_2a", b3, 384, (1, 3), 1, (0, 1)),
                                         bc(n + ".branch3x3_2b", b3, 384, (3, 1), 1, (1, 0))])
        bd = bc(n + ".branch3x3dbl_1", x, 448, 1)
        bd = bc(n + ".branch3x3dbl_2", bd, 384, 3, 1, 1)
        bd = g.concat(n + ".branch3x3dbl", [bc(n + ".branch3x3dbl_3a", bd, 384, (1, 3), 1, (0, 1)),
                                            bc(n + ".branch3x3dbl_3b", bd, 384, (3, 1), 1, (1, 0))])
        bp = bc(n + ".branch_pool", avg_pool(n, x), 192, 1)
        return [b1, b3, bd, bp]

    blocks = [("Mixed_5b", block_a, (32,)), ("Mixed_5c", block_a, (64,)), ("Mixed_5d", block_a, (64,)),
              ("Mixed_6a", block_b, ()), ("Mixed_6b", block_c, (128,)), ("Mixed_6c", block_c, (160,)),
              ("Mixed_6d", block_c, (160,)), ("Mixed_6e", block_c, (192,)),
              ("Mixed_7a", block_d, ()), ("Mixed_7b", block_e, ()), ("Mixed_7c", block_e, ())]
    for n, fn, args in blocks:
        branches = fn(n, x, *args)
        x = g.concat(n, branches)
        # Branch outputs are layers, except a plain max-pool of the block's input.
        g.layer(*[b for b in branches if not b.endswith(".pool")], n)
    h = head_basic_conv("AuxLogits.conv0", 768, 128, 1)
    h.update(head_basic_conv("AuxLogits.conv1", 128, 768, 5))
    h.update(linear("AuxLogits.fc", 768, ANY))
    g.head("AuxLogits", h)
    g.head("fc", linear("fc", 2048, ANY))
    return g


VGG_CFG = {"vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
           "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                     512, 512, 512, 512, "M"]}


def build_vgg(arch):
    """features.N indices as torchvision numbers them, named the neural-style way."""
    g = Graph(arch)
    x, index, block, i = "input", 0, 1, 1
    for v in VGG_CFG[arch]:
        if v == "M":
            x = g.pool("pool%d" % block, x, "max", 2, 2)
            g.layer(x)
            index, block, i = index + 1, block + 1, 1
            continue
        c = g.conv("conv%d_%d" % (block, i), x, v, 3, 1, 1, bias=True, key="features.%d" % index)
        x = g.relu("relu%d_%d" % (block, i), c)
        g.layer(c, x)
        index, i = index + 2, i + 1
    g.head("classifier", dict(**linear("classifier.0", 512 * 7 * 7, 4096), **linear("classifier.3", 4096, 4096),
                              **linear("classifier.6", 4096, ANY)))
    return g


def build_resnet50():
    g = Graph("resnet50")
    eps = 1e-5
    x = g.conv("conv1", "input", 64, 7, 2, 3)
    x = g.bn("bn1", x, eps)
    x = g.relu("relu", x)
    x = g.pool("maxpool", x, "max", 3, 2, 1)
    g.layer("relu", "maxpool")
    for stage, (planes, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 1):
        for b in range(blocks):
            p = "layer%d.%d" % (stage, b)
            s = stride if b == 0 else 1
            y = g.relu(p + ".relu1", g.bn(p + ".bn1", g.conv(p + ".conv1", x, planes, 1), eps))
            # v1.5: the stride sits on the 3x3 convolution
            y = g.relu(p + ".relu2", g.bn(p + ".bn2", g.conv(p + ".conv2", y, planes, 3, s, 1), eps))
            y = g.bn(p + ".bn3", g.conv(p + ".conv3", y, planes * 4, 1), eps)
            identity = x
            if b == 0:
                identity = g.bn(p + ".downsample.1", g.conv(p + ".downsample.0", x, planes * 4, 1, s), eps)
            # A stage's last block is named after the stage (layer3 = layer3.5).
            x = g.relu(p if b < blocks - 1 else "layer%d" % stage, g.add(p + ".add", [y, identity]))
            g.layer(x)
    g.head("fc", linear("fc", 2048, ANY))
    return g


BUILDERS = {"googlenet": build_googlenet, "inception_v3": build_inception_v3,
            "vgg16": lambda: build_vgg("vgg16"), "vgg19": lambda: build_vgg("vgg19"),
            "resnet50": build_resnet50}
DEFAULT_LAYERS = {"googlenet": "inception4c", "inception_v3": "Mixed_5d", "vgg16": "relu4_3",
                  "vgg19": "relu4_3", "resnet50": "layer3"}
TRANSFORM_INPUT = {"googlenet": True, "inception_v3": True}  # torchvision's pretrained settings


# ---- checking the state_dict ------------------------------------------------

def fmt_shape(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def all_keys(g):
    keys = set(g.params) | set(g.optional)
    for h in g.heads.values():
        keys |= set(h)
    return keys


def looks_like(sd_keys, arch):
    g = BUILDERS[arch]()
    return set(g.params) <= sd_keys and sd_keys <= all_keys(g)


def hint(sd, arch):
    """Why the keys may not fit, for the one error line."""
    keys = set(sd)
    for other in ARCHS:
        if other != arch and looks_like(keys, other):
            return " (the file holds a %s state_dict)" % other
    if keys and all(isinstance(k, str) and k.startswith("module.") for k in keys):
        return " (every key starts with 'module.': strip that DataParallel prefix first)"
    for wrap in ("state_dict", "model"):
        if isinstance(sd.get(wrap), dict):
            return " (the file wraps a dict under '%s'; save that dict itself)" % wrap
    return ""


def quote(key):
    """A key from the file as one printable line."""
    return key if key.isprintable() and key.strip() == key and key else repr(key)


def check_tensor(torch, arch, key, v, shape, n_classes):
    if not isinstance(v, torch.Tensor):
        raise ConvertError("%s: %s is a %s, not a tensor" % (arch, key, type(v).__name__))
    if v.layout != torch.strided or not v.is_floating_point() or v.is_complex():
        raise ConvertError("%s: %s has dtype %s, not floating point" % (arch, key, str(v.dtype).replace("torch.", "")))
    got = tuple(v.shape)
    if ANY in shape:  # the number of classes: whatever the first tensor of the group says
        i = shape.index(ANY)
        n = n_classes.setdefault("n", got[i] if len(got) == len(shape) and got[i] >= 1 else 1000)
        shape = shape[:i] + (n,) + shape[i + 1:]
    if got != tuple(shape):
        raise ConvertError("%s: %s has shape %s, expected %s" % (arch, key, fmt_shape(got), fmt_shape(shape)))


def check_state_dict(torch, g, sd, path):
    arch = g.arch
    if not isinstance(sd, dict):
        raise ConvertError("%s: holds a %s, not a state_dict (a dict of tensors)" % (quote(path), type(sd).__name__))
    for k in sd:
        if not isinstance(k, str):
            raise ConvertError("%s: key %r is not a string: not a state_dict" % (quote(path), k))
    for key, shape in g.params.items():
        if key not in sd:
            raise ConvertError("%s: missing key %s%s" % (arch, key, hint(sd, arch)))
    extra = sorted(set(sd) - all_keys(g))
    if extra:
        more = " (and %d more)" % (len(extra) - 1) if len(extra) > 1 else ""
        raise ConvertError("%s: unexpected key %s%s%s" % (arch, quote(extra[0]), more, hint(sd, arch)))
    for key, shape in g.params.items():
        check_tensor(torch, arch, key, sd[key], shape, {})
    for key in g.optional:
        v = sd.get(key)
        if v is not None and (not isinstance(v, torch.Tensor) or v.numel() != 1):
            raise ConvertError("%s: %s is not a one-element tensor" % (arch, key))
    for group, shapes in g.heads.items():
        present = [k for k in shapes if k in sd]
        if present and len(present) != len(shapes):
            missing = next(k for k in shapes if k not in sd)
            raise ConvertError("%s: missing key %s (the rest of %s is there)" % (arch, missing, group))
        n_classes = {}
        for key in present:
            check_tensor(torch, arch, key, sd[key], shapes[key], n_classes)


# ---- output -----------------------------------------------------------------

def ancestors(g, name):
    by_name = {n["name"]: n for n in g.nodes}
    keep, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n in keep or n == "input":
            continue
        keep.add(n)
        todo.extend(by_name[n]["inputs"])
    return keep


def tensor_bytes(np, arch, key, t, dtype):
    a = t.detach().cpu().double().numpy()
    if not np.isfinite(a).all():
        raise ConvertError("%s: %s holds a value that is not finite" % (arch, key))
    if a.ndim > 1 and dtype == "f16":
        big = float(np.abs(a).max()) if a.size else 0.0
        if big > 65504:
            raise ConvertError("%s: %s holds %g, beyond float16's range (use --dtype f32)" % (arch, key, big))
        return "F16", np.ascontiguousarray(a, dtype="<f2").tobytes()
    f = np.ascontiguousarray(a, dtype="<f4")
    if not np.isfinite(f).all():
        raise ConvertError("%s: %s holds a value beyond float32's range" % (arch, key))
    return "F32", f.tobytes()


def build_file(np, g, sd, args, source):
    names = [n["name"] for n in g.nodes]
    layers = list(g.layers)
    default = DEFAULT_LAYERS[g.arch]
    if args.upto:
        if args.upto not in g.layers:
            top = [l for l in g.layers if "." not in l]  # blocks and stages, not branches
            some = top if len(top) <= 8 else top[:4] + ["..."] + top[-3:]
            raise ConvertError("%s: --upto %s is not a layer (layers include %s)" % (g.arch, args.upto, ", ".join(some)))
        keep = ancestors(g, args.upto)
        names = [n for n in names if n in keep]
        layers = [l for l in layers if l in keep]
        if default not in keep:
            default = args.upto
    nodes = [n for n in g.nodes if n["name"] in set(names)]
    header, chunks, offset = {}, [], 0
    for n in nodes:
        for key in n.get("tensors", {}).values():
            dtype, data = tensor_bytes(np, g.arch, key, sd[key], args.dtype)
            header[key] = {"dtype": dtype, "shape": list(g.params[key]), "data_offsets": [offset, offset + len(data)]}
            chunks.append(data)
            offset += len(data)
    transform = args.transform_input == "yes" if args.transform_input else TRANSFORM_INPUT.get(g.arch, False)
    compact = {"separators": (",", ":"), "ensure_ascii": True}
    header["__metadata__"] = {
        "format": "deepdream-graph-1",
        "source": source,
        "converter": "tools/convert_torchvision.py",
        "license": LICENSE,
        "graph": json.dumps({"input": {"name": "input", "channels": 3}, "nodes": nodes}, **compact),
        "layers": json.dumps(layers, **compact),
        "default_layers": default,
        "preprocess": json.dumps({"channels": "RGB", "range": [0, 255], "mean": MEAN, "std": STD,
                                  "transform_input": transform}, **compact),
    }
    head = json.dumps(header, **compact).encode("ascii")
    head += b" " * (-len(head) % 8)  # the tensor data starts 8-byte aligned
    return [len(head).to_bytes(8, "little"), head] + chunks, len(nodes), len(layers)


def write_atomically(path, parts):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            for p in parts:
                f.write(p)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # the rename itself survives a crash once the directory is synced
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def one_line(text):
    return " ".join(str(text).split())


def load_weights(torch, path):
    """The file's sha256 and its state_dict, through weights_only."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError as e:
        if "weights_only" in str(e):
            raise ConvertError("torch %s cannot load without running code (needs torch >= 1.13 for weights_only)"
                               % torch.__version__)
        raise ConvertError("%s: not a loadable state_dict: %s" % (quote(path), one_line(e)))
    except OSError:
        raise
    except Exception as e:  # pickle, zip and torch errors alike: the file is not what we read
        msg = one_line(e)
        if "WeightsUnpickler error:" in msg:
            msg = "refused by torch.load(weights_only=True): " + msg.split("WeightsUnpickler error:", 1)[1].strip()
        raise ConvertError("%s: not a loadable state_dict: %s" % (quote(path), msg[:400]))
    return digest.hexdigest(), sd


def parse_args(argv):
    p = argparse.ArgumentParser(prog="convert_torchvision.py",
                                description="torchvision state_dict -> deepdream safetensors model")
    p.add_argument("--arch", required=True, choices=ARCHS)
    p.add_argument("--weights", required=True, help="a torchvision state_dict (.pth)")
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    p.add_argument("--dtype", choices=("f16", "f32"), default="f16",
                   help="convolution kernels' type (default f16; 1-D tensors are always f32)")
    p.add_argument("--upto", metavar="LAYER", help="keep only what LAYER needs (default: the whole trunk)")
    p.add_argument("--transform-input", choices=("yes", "no"),
                   help="googlenet, inception_v3: the model's own input transform "
                        "(default yes, as torchvision's pretrained weights)")
    args = p.parse_args(argv)
    if args.transform_input and args.arch not in TRANSFORM_INPUT:
        p.error("--transform-input is for googlenet and inception_v3 only")
    return args


def main(argv):
    args = parse_args(argv)
    try:
        import numpy as np
        import torch
    except ImportError as e:
        print("%s: %s (this converter needs torch and numpy)" % (PROG, one_line(e)), file=sys.stderr)
        return 1
    try:
        g = BUILDERS[args.arch]()
        sha256, sd = load_weights(torch, args.weights)
        check_state_dict(torch, g, sd, args.weights)
        source = "torchvision %s state_dict %s, sha256 %s" % (args.arch, os.path.basename(args.weights), sha256)
        parts, n_nodes, n_layers = build_file(np, g, sd, args, source)
        try:
            write_atomically(args.out, parts)
        except OSError as e:
            raise ConvertError("%s: %s" % (quote(args.out), e.strerror or one_line(e)))
    except ConvertError as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 1
    except OSError as e:  # reading the weights
        name = e.filename if e.filename is not None else args.weights
        print("%s: %s: %s" % (PROG, quote(str(name)), e.strerror or one_line(e)), file=sys.stderr)
        return 1
    size = sum(len(p) for p in parts)
    print("%s: %s: %d nodes, %d layers, %s kernels, %d bytes -> %s" % (
        PROG, args.arch, n_nodes, n_layers, args.dtype, size, quote(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
