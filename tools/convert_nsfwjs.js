#!/usr/bin/env node
// Converts the InceptionV3 of the npm package nsfwjs@4.3.0 (TensorFlow.js layers
// format, uint8-quantised) into weights/inception_v3_mixed5.safetensors: the trunk
// from the input up to and including mixed5, the uint8 codes stored as they are
// (with each tensor's min/scale), and the graph in the header's __metadata__.
//
// usage: node tools/convert_nsfwjs.js [--tgz nsfwjs-4.3.0.tgz] [--out FILE]
// Without --tgz it runs `npm pack nsfwjs@4.3.0` in a temporary directory.
// The package's integrity hash is checked before anything in it is read; the
// package's JavaScript is evaluated in an empty vm context (no require, no I/O).
// The output depends only on the package bytes: two runs give identical files.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const vm = require("vm");
const crypto = require("crypto");
const { execFileSync } = require("child_process");

const PACKAGE = "nsfwjs";
const VERSION = "4.3.0";
const INTEGRITY =
  "sha512-WTKDte0vp1X97N1h34P79G/hG+sVT3+TnDz9di1WseIJR93v11E4viNX7Vg9WsO6HYoR772Nzq2iM8jo3XBZ+g==";
const MODEL_DIR = "package/dist/models/inception_v3";
const LAST_LAYER = "mixed5";

function fail(msg) {
  process.stderr.write(`convert_nsfwjs: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const a = { tgz: null, out: path.join(__dirname, "..", "weights", "inception_v3_mixed5.safetensors") };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--tgz" && i + 1 < argv.length) a.tgz = argv[++i];
    else if (argv[i] === "--out" && i + 1 < argv.length) a.out = argv[++i];
    else fail(`unknown argument '${argv[i]}' (usage: convert_nsfwjs.js [--tgz FILE] [--out FILE])`);
  }
  return a;
}

// Evaluates a browserify UMD module and returns its module.exports.
function evalModule(file) {
  const sandbox = { module: { exports: {} } };
  sandbox.exports = sandbox.module.exports;
  vm.runInNewContext(fs.readFileSync(file, "utf8"), sandbox, { filename: file });
  return sandbox.module.exports;
}

function base64Strict(s, name) {
  if (typeof s !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0)
    fail(`${name}: shard is not a plain base64 string`);
  return Buffer.from(s, "base64");
}

const pair = (v, what) => {
  if (!Array.isArray(v) || v.length !== 2 || !v.every(Number.isInteger)) fail(`bad ${what}: ${JSON.stringify(v)}`);
  return v;
};

// Keras layer -> graph node (op, inputs, attributes, tensor names).
function layerToNode(layer) {
  const c = layer.config;
  const inbound = layer.inbound_nodes;
  const inputs = inbound.length ? inbound[0].map((x) => x[0]) : [];
  const node = { name: layer.name, op: null, inputs };
  switch (layer.class_name) {
    case "Conv2D":
      if (c.data_format !== "channels_last" || c.dilation_rate.some((d) => d !== 1) || c.activation !== "linear")
        fail(`${layer.name}: unsupported Conv2D configuration`);
      Object.assign(node, {
        op: "conv2d", filters: c.filters, kernel: pair(c.kernel_size, "kernel"),
        strides: pair(c.strides, "strides"), padding: c.padding, use_bias: c.use_bias,
        kernel_layout: "HWIO",
        tensors: { kernel: `${layer.name}/kernel` },
      });
      if (c.use_bias) node.tensors.bias = `${layer.name}/bias`;
      break;
    case "BatchNormalization":
      if (c.axis !== 3 && c.axis !== -1) fail(`${layer.name}: batch norm not over channels`);
      Object.assign(node, {
        op: "batch_norm", epsilon: c.epsilon, center: c.center, scale: c.scale,
        tensors: { moving_mean: `${layer.name}/moving_mean`, moving_variance: `${layer.name}/moving_variance` },
      });
      if (c.center) node.tensors.beta = `${layer.name}/beta`;
      if (c.scale) node.tensors.gamma = `${layer.name}/gamma`;
      break;
    case "Activation":
      if (c.activation !== "relu") fail(`${layer.name}: activation ${c.activation} unsupported`);
      node.op = "relu";
      break;
    case "MaxPooling2D":
    case "AveragePooling2D":
      Object.assign(node, {
        op: "pool", pool: layer.class_name === "MaxPooling2D" ? "max" : "avg",
        size: pair(c.pool_size, "pool_size"), strides: pair(c.strides, "strides"), padding: c.padding,
      });
      break;
    case "Concatenate":
      if (c.axis !== 3 && c.axis !== -1) fail(`${layer.name}: concat not over channels`);
      Object.assign(node, { op: "concat", axis: "channels" });
      break;
    default:
      fail(`${layer.name}: layer class ${layer.class_name} unsupported`);
  }
  return node;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "dd-convert-"));
  try {
    let tgz = args.tgz;
    if (!tgz) {
      execFileSync("npm", ["pack", `${PACKAGE}@${VERSION}`, "--silent"], { cwd: work, stdio: ["ignore", "ignore", "inherit"] });
      tgz = path.join(work, `${PACKAGE}-${VERSION}.tgz`);
    }
    const tgzBytes = fs.readFileSync(tgz);
    const integrity = "sha512-" + crypto.createHash("sha512").update(tgzBytes).digest("base64");
    if (integrity !== INTEGRITY) fail(`${tgz}: integrity ${integrity} does not match the pinned ${INTEGRITY}`);
    execFileSync("tar", ["xzf", path.resolve(tgz), "-C", work, MODEL_DIR]);
    const mdir = path.join(work, MODEL_DIR);

    const model = evalModule(path.join(mdir, "model.min.js"));
    const layers = model.modelTopology.model_config.config.layers;
    const last = layers.findIndex((l) => l.name === LAST_LAYER);
    if (last < 0) fail(`no layer ${LAST_LAYER} in the topology`);
    const kept = layers.slice(0, last + 1);
    if (kept[0].class_name !== "InputLayer") fail("first layer is not the input");
    const inputName = kept[0].name;
    const nodes = kept.slice(1).map(layerToNode);

    // Shards: base64 strings -> one byte buffer in manifest order.
    const group = model.weightsManifest[0];
    if (model.weightsManifest.length !== 1) fail("expected one weight group");
    const all = Buffer.concat(group.paths.map((p) => base64Strict(evalModule(path.join(mdir, p + ".min.js")), p)));
    const byName = new Map();
    let off = 0;
    for (const w of group.weights) {
      const q = w.quantization;
      if (w.dtype !== "float32" || !q || q.dtype !== "uint8") fail(`${w.name}: not uint8-quantised float32`);
      const n = w.shape.reduce((a, b) => a * b, 1);
      byName.set(w.name, { shape: w.shape, bytes: all.subarray(off, off + n), min: q.min, scale: q.scale });
      off += n;
    }
    if (off !== all.length) fail(`manifest covers ${off} bytes, shards hold ${all.length}`);

    // Tensors in graph order, stored contiguously as the safetensors spec requires.
    const header = {};
    const quant = {};
    const chunks = [];
    let dataLen = 0;
    for (const node of nodes) {
      for (const t of Object.values(node.tensors || {})) {
        const w = byName.get(t);
        if (!w) fail(`${node.name}: tensor ${t} not in the weights manifest`);
        header[t] = { dtype: "U8", shape: w.shape, data_offsets: [dataLen, dataLen + w.bytes.length] };
        quant[t] = { min: w.min, scale: w.scale };
        chunks.push(w.bytes);
        dataLen += w.bytes.length;
      }
    }
    const layerNames = nodes.filter((n) => n.op !== "batch_norm").map((n) => n.name);
    header.__metadata__ = {
      format: "deepdream-graph-1",
      source: `npm:${PACKAGE}@${VERSION} ${MODEL_DIR.replace(/^package\//, "")}, layers ${inputName}..${LAST_LAYER}`,
      source_integrity: INTEGRITY,
      license: "MIT (nsfwjs, Copyright (c) 2019 Infinite Red, Inc.)",
      converter: "tools/convert_nsfwjs.js",
      preprocess: JSON.stringify({ channels: "RGB", range: [0, 255], divisor: 127.5, offset: -1 }),
      quantization: JSON.stringify({ formula: "float32(double(q) * scale + min)", tensors: quant }),
      graph: JSON.stringify({ input: { name: inputName, channels: 3 }, nodes }),
      layers: JSON.stringify(layerNames),
    };
    let json = Buffer.from(JSON.stringify(header), "utf8");
    const padded = Math.ceil(json.length / 8) * 8; // tensor data starts 8-byte aligned
    json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const out = Buffer.concat([len, json, ...chunks]);

    const tmp = args.out + ".tmp";
    fs.writeFileSync(tmp, out);
    fs.renameSync(tmp, args.out);
    const sha = crypto.createHash("sha256").update(out).digest("hex");
    process.stdout.write(`${args.out}: ${nodes.length} nodes, ${chunks.length} tensors, ${out.length} bytes, sha256 ${sha}\n`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main();
