#!/usr/bin/env node
// Checks GLB files the way a user's tools will see them, offline:
//   1. the Khronos glTF-Validator (npm gltf-validator, validateBytes): errors and warnings;
//   2. three.js GLTFLoader.parse in Node (no DOM): does it load, how many nodes and meshes.
// Prints one JSON line per file and exits 1 if any file has a validator error or fails to load
// (2 on bad usage). Usage: node check.mjs FILE.glb…
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import validator from 'gltf-validator';
import { GLTFLoader } from 'three/examples/jsm/loaders/GLTFLoader.js';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: check.mjs FILE.glb…');
  process.exit(2);
}

async function threeLoad(bytes) {
  // GLTFLoader.parse wants an ArrayBuffer of exactly the file.
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const gltf = await new GLTFLoader().parseAsync(buffer, '');
  let meshes = 0;
  let triangles = 0;
  gltf.scene.traverse((o) => {
    if (o.isMesh) {
      meshes += 1;
      const g = o.geometry;
      triangles += (g.index ? g.index.count : g.attributes.position.count) / 3;
    }
  });
  const json = gltf.parser.json;
  return {
    nodes: (json.nodes || []).length,
    meshes: (json.meshes || []).length,
    three_meshes: meshes,
    triangles,
  };
}

let failed = 0;
for (const file of files) {
  const line = { file, errors: null, warnings: null, infos: null, hints: null, loaded: false };
  try {
    const bytes = new Uint8Array(await readFile(file));
    const report = await validator.validateBytes(bytes, {
      uri: basename(file),
      maxIssues: 100,
      externalResourceFunction: (uri) => Promise.reject(new Error(`external resource ${uri} not allowed`)),
    });
    const issues = report.issues;
    Object.assign(line, {
      errors: issues.numErrors,
      warnings: issues.numWarnings,
      infos: issues.numInfos,
      hints: issues.numHints,
    });
    // severity 0 = error, 1 = warning.
    const serious = issues.messages.filter((m) => m.severity <= 1);
    if (serious.length > 0) {
      line.messages = serious.slice(0, 10).map((m) => `${m.code} ${m.pointer || ''}: ${m.message}`);
    }
    try {
      Object.assign(line, await threeLoad(bytes), { loaded: true });
    } catch (e) {
      line.load_error = String(e && e.message ? e.message : e);
    }
  } catch (e) {
    line.error = String(e && e.message ? e.message : e);
  }
  if (line.errors !== 0 || !line.loaded) failed += 1;
  console.log(JSON.stringify(line));
}
process.exit(failed > 0 ? 1 : 0);
