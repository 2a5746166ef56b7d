import { defineConfig } from "vite";

// The FastAPI app serves dist/; in development, Vite proxies the API to it.
export default defineConfig({
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    // three.js (with its addons and the meshopt decoder) is one ~650 kB chunk, loaded only by the
    // hall and the portal, and cached across both: named, and not warned about.
    chunkSizeWarningLimit: 800,
    rolldownOptions: {
      output: {
        codeSplitting: { groups: [{ name: "three", test: /node_modules[\\/]three[\\/]/ }] },
      },
    },
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8000",
      "/blobs": "http://127.0.0.1:8000",
    },
  },
});
