// Runs face-api itself (@vladmandic/face-api, tfjs WASM backend, one thread) on raw
// RGB pixel buffers written by the Go side, so both implementations see the very
// same tensors. Used by engine/parity_test.go and cmd/benchengine.
//
// usage: node faceapi.js MANIFEST.json
//   MANIFEST: {"modules": node_modules dir, "repeat": N (default 1),
//              "images": [{"name", "raw": file of W*H*3 bytes, "width", "height",
//                          "inputSize", "scoreThreshold"}]}
// prints JSON: {"backend", "simd", "threads", "images": [{"name", "ms": median ms of
//   the timed full pipeline runs, "faces": [{"box": {x,y,width,height}, "score",
//   "landmarks": [[x,y]...], "descriptor": [...]}]}]}
'use strict';
const fs = require('fs');
const path = require('path');

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
  const repeat = manifest.repeat || 1;
  const out = {
    backend: tf.getBackend(),
    simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT'),
    threads: tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT') ? 'multi' : 1,
    images: [],
  };
  for (const im of manifest.images) {
    const bytes = fs.readFileSync(im.raw);
    if (bytes.length !== im.width * im.height * 3) throw new Error(`${im.raw}: ${bytes.length} bytes, want ${im.width}x${im.height}x3`);
    const input = tf.tensor3d(Float32Array.from(bytes), [im.height, im.width, 3], 'float32');
    const opts = new faceapi.TinyFaceDetectorOptions({ inputSize: im.inputSize, scoreThreshold: im.scoreThreshold });
    let res;
    // One warm-up run so that timings exclude WASM kernel set-up.
    res = await faceapi.detectAllFaces(input, opts).withFaceLandmarks().withFaceDescriptors();
    const times = [];
    for (let i = 0; i < repeat; i++) {
      const t0 = process.hrtime.bigint();
      res = await faceapi.detectAllFaces(input, opts).withFaceLandmarks().withFaceDescriptors();
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    const ms = times.length ? times[Math.floor(times.length / 2)] : 0;
    input.dispose();
    out.images.push({
      name: im.name,
      ms,
      faces: res.map((r) => ({
        box: { x: r.detection.box.x, y: r.detection.box.y, width: r.detection.box.width, height: r.detection.box.height },
        score: r.detection.score,
        landmarks: r.landmarks.positions.map((p) => [p.x, p.y]),
        descriptor: Array.from(r.descriptor),
      })),
    });
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
