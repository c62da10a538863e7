// Runs face-api itself (@vladmandic/face-api, tfjs WASM backend, one thread) on raw
// RGB pixel buffers written by the Go side, so both implementations see the very
// same tensors. Used by engine/parity_test.go and cmd/benchengine.
//
// usage: node faceapi.js MANIFEST.json
//   MANIFEST: {"modules": node_modules dir,
//              "images": [{"name", "raw": file of W*H*3 bytes, "width", "height",
//                          "inputSize", "scoreThreshold"}]}
// After loading the models it prints one JSON line {"backend", "simd", "threads"}
// and then serves requests, one JSON line each on stdin: {"image": index,
// "faces": bool}. Each request runs face-api's full pipeline
// (detectAllFaces().withFaceLandmarks().withFaceDescriptors()) once on that
// image and answers one JSON line: {"ms": wall ms, "cpuMs": process CPU ms
// (user+system, all of Node's threads), "faces": [{"box": {x,y,width,height},
// "score", "landmarks": [[x,y]...], "descriptor": [...]}] when asked}. Serving
// one run per request lets the caller interleave face-api with the engine so
// both see the same machine load. EOF on stdin ends the process.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');

async function main() {
  const manifest = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const mods = manifest.modules;
  const faceapi = require(path.join(mods, '@vladmandic/face-api/dist/face-api.node-wasm.js'));
  const wasm = require(path.join(mods, '@tensorflow/tfjs-backend-wasm'));
  const tf = faceapi.tf;
  // Node 22's fetch cannot read files: make the backend load its .wasm with fs.
  wasm.setWasmPaths(path.join(mods, '@tensorflow/tfjs-backend-wasm/dist') + path.sep, false);
  wasm.setThreadsCount && wasm.setThreadsCount(1);
  await tf.setBackend('wasm');
  await tf.ready();
  const modelDir = path.join(mods, '@vladmandic/face-api/model');
  await faceapi.nets.tinyFaceDetector.loadFromDisk(modelDir);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(modelDir);
  await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);
  const write = (obj) => new Promise((resolve) => process.stdout.write(JSON.stringify(obj) + '\n', resolve));
  await write({
    backend: tf.getBackend(),
    simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT'),
    threads: tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT') ? 'multi' : 1,
  });
  const images = manifest.images;
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const req = JSON.parse(line);
    const im = images[req.image];
    if (!im) throw new Error(`no image ${req.image}`);
    const bytes = fs.readFileSync(im.raw);
    if (bytes.length !== im.width * im.height * 3) throw new Error(`${im.raw}: ${bytes.length} bytes, want ${im.width}x${im.height}x3`);
    const input = tf.tensor3d(Float32Array.from(bytes), [im.height, im.width, 3], 'float32');
    const opts = new faceapi.TinyFaceDetectorOptions({ inputSize: im.inputSize, scoreThreshold: im.scoreThreshold });
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const res = await faceapi.detectAllFaces(input, opts).withFaceLandmarks().withFaceDescriptors();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const c = process.cpuUsage(c0);
    input.dispose();
    const out = { ms, cpuMs: (c.user + c.system) / 1000 };
    if (req.faces) {
      out.faces = res.map((r) => ({
        box: { x: r.detection.box.x, y: r.detection.box.y, width: r.detection.box.width, height: r.detection.box.height },
        score: r.detection.score,
        landmarks: r.landmarks.positions.map((p) => [p.x, p.y]),
        descriptor: Array.from(r.descriptor),
      }));
    }
    await write(out);
  }
}

main().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
