// Runs face-api's own networks (tfjs, wasm or cpu backend) on raw float32 inputs
// and writes their raw outputs, for models/convert's ONNX correctness test.
//
//   node faceapi_ref.cjs <face-api model dir> <jobs.json> <backend: wasm|cpu>
//
// jobs.json: [{"net": "recognition"|"tiny"|"landmarks"|"ssd", "input": "in.f32",
//              "shape": [N,H,W,3], "output": "out.f32"}]
// Each input holds N*H*W*3 little-endian float32 RGB values 0..255 (NHWC).
// Outputs are little-endian float32; a line per job on stdout gives its shape
// and time; for ssd, <output> holds face-api's decoded boxes [N,5118,4] and
// <output>.scores its scores [N,5118]. Inputs must already be square and of the net's size so face-api's
// padToSquare/resize are no-ops.
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [modelDir, jobsFile, backend = 'wasm'] = process.argv.slice(2);
  const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
  const tf = faceapi.tf;
  if (backend === 'wasm') {
    const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    require('@tensorflow/tfjs-backend-wasm').setWasmPaths(wasmDir + path.sep, false);
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  }
  await tf.setBackend(backend);
  await tf.ready();
  const nets = {
    recognition: faceapi.nets.faceRecognitionNet,
    tiny: faceapi.nets.tinyFaceDetector,
    landmarks: faceapi.nets.faceLandmark68Net,
    ssd: faceapi.nets.ssdMobilenetv1,
  };
  const jobs = JSON.parse(fs.readFileSync(jobsFile, 'utf8'));
  for (const job of jobs) {
    const net = nets[job.net];
    if (!net) throw new Error(`unknown net ${job.net}`);
    if (!net.isLoaded) await net.loadFromDisk(modelDir);
    const [n, h, w, c] = job.shape;
    const buf = fs.readFileSync(job.input);
    const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    if (all.length !== n * h * w * c) throw new Error(`${job.input}: ${all.length} values, shape ${job.shape}`);
    const images = [];
    for (let i = 0; i < n; i++) images.push(tf.tensor3d(all.subarray(i * h * w * c, (i + 1) * h * w * c), [h, w, c], 'float32'));
    const input = await faceapi.toNetInput(images);
    const t0 = process.hrtime.bigint();
    let out;
    let scores = null;
    if (job.net === 'recognition') out = net.forwardInput(input);
    else if (job.net === 'tiny') out = net.forwardInput(input, h);
    else if (job.net === 'ssd') {
      // face-api returns decoded boxes [5118,4] and scores [5118] per image.
      const res = net.forwardInput(input);
      out = tf.stack(res.boxes);
      scores = tf.stack(res.scores);
      res.boxes.forEach((t) => t.dispose());
      res.scores.forEach((t) => t.dispose());
    } else out = net.runNet(input);
    const data = await out.data();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    fs.writeFileSync(job.output, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    if (scores) {
      const sd = await scores.data();
      fs.writeFileSync(job.output + '.scores', Buffer.from(sd.buffer, sd.byteOffset, sd.byteLength));
      scores.dispose();
    }
    console.log(JSON.stringify({ net: job.net, shape: out.shape, ms, backend: tf.getBackend() }));
    out.dispose();
    images.forEach((t) => t.dispose());
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
