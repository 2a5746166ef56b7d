// Runs the Khronos glTF-Validator on one asset read from stdin and prints the report as JSON.
//
// Used by pipeline/validate.py: `node validate.mjs [maxIssues] < model.glb`.
// With `--batch` as the second argument, stdin holds several assets, each preceded by its length
// as a 4-byte little-endian integer, and stdout is a JSON array with one entry per asset: its
// report, or {"refused": message} when the validator could not read it at all. One process for
// every output of an upload saves Node's start-up per file.
// No externalResourceFunction is given, so the validator never opens a file or a URL: external
// URIs are reported, not followed. Exit codes: 0 a report was printed (whatever it says),
// 2 the validator refused the input (not glTF or GLB at all), 3 the npm package is missing.

const maxIssues = Number.parseInt(process.argv[2] ?? "1000", 10);

let validator;
try {
  validator = await import("gltf-validator");
} catch (error) {
  process.stderr.write(`gltf-validator is not installed: ${error}\n`);
  process.exit(3);
}

const chunks = [];
for await (const chunk of process.stdin) {
  chunks.push(chunk);
}
const input = Buffer.concat(chunks);
const options = { maxIssues: Number.isFinite(maxIssues) ? maxIssues : 1000, writeTimestamp: false };

if (process.argv[3] === "--batch") {
  const results = [];
  let offset = 0;
  while (offset + 4 <= input.length) {
    const length = input.readUInt32LE(offset);
    const end = offset + 4 + length;
    if (end > input.length) {
      process.stderr.write("batch input is truncated\n");
      process.exit(2);
    }
    const bytes = new Uint8Array(input.subarray(offset + 4, end));
    try {
      results.push(await validator.validateBytes(bytes, options));
    } catch (error) {
      results.push({ refused: String(error) });
    }
    offset = end;
  }
  // Exit only once the report is flushed: process.exit() right after write() cuts a piped
  // stdout at 64 KiB (Node writes to pipes asynchronously).
  await new Promise((resolve) => process.stdout.write(`${JSON.stringify(results)}\n`, resolve));
  process.exit(0);
}

const bytes = new Uint8Array(input);

try {
  const report = await validator.validateBytes(bytes, options);
  process.stdout.write(JSON.stringify(report));
  process.stdout.write("\n");
} catch (error) {
  // validateBytes rejects when it cannot even tell glTF from GLB.
  process.stderr.write(`${error}\n`);
  process.exit(2);
}
