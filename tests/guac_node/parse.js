#!/usr/bin/env node
// Parse a Guacamole recording with the reference client's own parser, Guacamole.Parser from
// guacamole-common-js, and print the instructions as JSON ([opcode, ...args] each).
//
//   node parse.js [--lib legacy|current] < recording.guac
//       -> {"instructions": [[...], ...], "error": null | "message"}
//   node parse.js [--lib ...] --serve
//       -> reads one JSON object per line {"data": "<recording text>", "chunks": [n, ...]?}
//          and answers one JSON line per request (same shape as above), so a test can parse
//          many inputs with one Node process. "chunks" splits the text (UTF-16 code units,
//          the way a browser tunnel hands text to receive()) into receive() calls.
//
// Libraries (both only ship browser-style concatenated sources, so the file is evaluated in a
// vm context and the global `Guacamole` is taken from it):
//   legacy  = npm guacamole-common-js 1.5.0 (Apache Guacamole 1.5.0 sources, repackaged):
//             counts element lengths in UTF-16 code units (bug GUACAMOLE-615).
//   current = npm @glokon/guacamole-common-js 1.6.0 (Apache Guacamole 1.6.0 sources):
//             counts code points, as the protocol specifies.
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const readline = require('readline');

const LIBS = {
  legacy: 'node_modules/guacamole-common-js/dist/cjs/guacamole-common.js',
  current: 'node_modules/@glokon/guacamole-common-js/lib/cjs/guacamole.js',
};

function loadGuacamole(lib) {
  const file = path.join(__dirname, LIBS[lib]);
  const context = vm.createContext({ module: { exports: {} }, console });
  vm.runInContext(fs.readFileSync(file, 'utf8') + '\n;this.__Guacamole = Guacamole;', context, { filename: file });
  return context.__Guacamole;
}

function parse(Guacamole, text, chunks) {
  const parser = new Guacamole.Parser();
  const instructions = [];
  parser.oninstruction = (opcode, args) => instructions.push([opcode, ...args]);
  let error = null;
  try {
    if (chunks && chunks.length) {
      let at = 0;
      for (const n of chunks) { parser.receive(text.substring(at, at + n)); at += n; }
      if (at < text.length) parser.receive(text.substring(at));
    } else {
      parser.receive(text);
    }
  } catch (e) {
    error = String(e && e.message || e);
  }
  return { instructions, error };
}

function main() {
  const argv = process.argv.slice(2);
  const li = argv.indexOf('--lib');
  const lib = li >= 0 ? argv[li + 1] : 'current';
  if (!(lib in LIBS)) { console.error(`unknown --lib ${lib}`); process.exit(2); }
  const Guacamole = loadGuacamole(lib);
  if (argv.includes('--serve')) {
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    rl.on('line', (line) => {
      if (!line.trim()) return;
      const req = JSON.parse(line);
      process.stdout.write(JSON.stringify(parse(Guacamole, req.data, req.chunks)) + '\n');
    });
    return;
  }
  const text = fs.readFileSync(0).toString('utf8');
  process.stdout.write(JSON.stringify(parse(Guacamole, text)) + '\n');
}

main();
