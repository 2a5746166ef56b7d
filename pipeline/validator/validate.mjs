// Runs the Khronos glTF-Validator on one asset read from stdin and prints the report as JSON.
//
// Used by pipeline/validate.py: `node validate.mjs [maxIssues] < model.glb`.
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
const bytes = new Uint8Array(Buffer.concat(chunks));

try {
  const report = await validator.validateBytes(bytes, {
    maxIssues: Number.isFinite(maxIssues) ? maxIssues : 1000,
    writeTimestamp: false,
  });
  process.stdout.write(JSON.stringify(report));
  process.stdout.write("\n");
} catch (error) {
  // validateBytes rejects when it cannot even tell glTF from GLB.
  process.stderr.write(`${error}\n`);
  process.exit(2);
}
